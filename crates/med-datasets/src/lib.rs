//! The paper's datasets in their packaged layout, preprocessing, and a synthetic text-guided set.
