//! Segmentation metrics on plain masks: DSC, NSD, HD95, ASSD, calibration.
