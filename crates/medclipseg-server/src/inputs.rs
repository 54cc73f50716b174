//! Stored images read back for prediction and display, and 8-bit PNG rendering.

use std::path::Path;

use med_volumes::{IntensityMap, Slice2d, Volume, diagonal_affine};
use medclipseg_pipeline::Image8;

use crate::datastore::ImageKind;
use crate::error::ApiError;

/// A decoded input.
pub enum Input {
    /// A picture as the model's BGR image.
    Picture(Image8),
    /// A volume (NIfTI or DICOM series); boxed, its header is large.
    Volume(Box<Volume>),
}

impl Input {
    /// Reads a stored image; a file that does not decode is a 422 naming it.
    pub fn load(path: &Path, kind: ImageKind) -> Result<Input, ApiError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unreadable = |e: &dyn std::error::Error| {
            // The message names the upload, not the server's folder.
            let text =
                medclipseg_pipeline::with_causes(e).replace(&path.display().to_string(), &name);
            ApiError::unprocessable(format!("{name}: cannot read the image: {text}"))
        };
        match kind {
            ImageKind::Picture => medclipseg_pipeline::read_image(path)
                .map(Input::Picture)
                .map_err(|e| unreadable(&e)),
            ImageKind::Nifti => med_volumes::read_nifti(path)
                .map(|v| Input::Volume(Box::new(v)))
                .map_err(|e| unreadable(&e)),
            ImageKind::Dicom => med_volumes::read_dicom_series(path)
                .map(|v| Input::Volume(Box::new(v)))
                .map_err(|e| unreadable(&e)),
        }
    }

    /// Grid `(nx, ny, nz)`: a picture is `(width, height, 1)`.
    pub fn dims(&self) -> [usize; 3] {
        match self {
            Input::Picture(p) => [p.width, p.height, 1],
            Input::Volume(v) => v.dims(),
        }
    }

    /// Voxel size in mm, when the file says (never for a picture).
    pub fn spacing(&self) -> Option<[f64; 3]> {
        match self {
            Input::Picture(_) => None,
            Input::Volume(v) => Some(v.spacing()),
        }
    }

    /// The grid outputs are written on: the volume itself, or a one-slice grid of 1 mm voxels
    /// for a picture (column `i`, row `j`).
    pub fn grid(&self) -> Result<Volume, ApiError> {
        match self {
            Input::Volume(v) => Ok(v.as_ref().clone()),
            Input::Picture(p) => Volume::new(
                [p.width, p.height, 1],
                vec![0.0; p.width * p.height],
                [1.0; 3],
                diagonal_affine([1.0; 3]),
            )
            .map_err(|e| ApiError::internal(e.to_string())),
        }
    }

    /// The view of slice `index` along `axis` as PNG bytes: a picture in colour, a volume slice
    /// in grey through `window` (percentiles 0.5–99.5 of the volume when `None`).
    pub fn view_png(
        &self,
        axis: usize,
        index: usize,
        window: Option<IntensityMap>,
    ) -> Result<Vec<u8>, ApiError> {
        match self {
            Input::Picture(p) => {
                let rgb: Vec<u8> = p
                    .data
                    .chunks_exact(3)
                    .flat_map(|bgr| [bgr[2], bgr[1], bgr[0]])
                    .collect();
                let image = image::RgbImage::from_raw(p.width as u32, p.height as u32, rgb)
                    .ok_or_else(|| ApiError::internal("picture buffer size"))?;
                encode_png(image::DynamicImage::ImageRgb8(image))
            }
            Input::Volume(v) => {
                let map = window.unwrap_or_default();
                let (lo, hi) = map
                    .bounds(v.data())
                    .map_err(|e| ApiError::bad_request(format!("window: {e}")))?;
                let slice = slice_of(v, axis, index)?;
                grey_png(&slice, |x| med_volumes::scale_to_u8(x, lo, hi))
            }
        }
    }
}

/// Slice `index` along `axis`, with a 400 naming a bad axis or index.
pub fn slice_of(volume: &Volume, axis: usize, index: usize) -> Result<Slice2d, ApiError> {
    volume
        .slice(axis, index)
        .map_err(|e| ApiError::bad_request(format!("axis {axis}, index {index}: {e}")))
}

/// A slice as an 8-bit grey PNG through `to_u8`.
pub fn grey_png(slice: &Slice2d, to_u8: impl Fn(f32) -> u8) -> Result<Vec<u8>, ApiError> {
    let pixels: Vec<u8> = slice.data.iter().map(|&v| to_u8(v)).collect();
    let image = image::GrayImage::from_raw(slice.cols as u32, slice.rows as u32, pixels)
        .ok_or_else(|| ApiError::internal("slice buffer size"))?;
    encode_png(image::DynamicImage::ImageLuma8(image))
}

fn encode_png(image: image::DynamicImage) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| ApiError::internal(format!("PNG encoding: {e}")))?;
    Ok(bytes)
}

/// Parses `CENTER,WIDTH` (a CT window in the volume's units).
pub fn parse_window(text: &str) -> Result<IntensityMap, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "window `{text}`: expected CENTER,WIDTH with WIDTH > 0 (e.g. 40,400)"
        ))
    };
    let (c, w) = text.split_once(',').ok_or_else(bad)?;
    let center: f64 = c.trim().parse().map_err(|_| bad())?;
    let width: f64 = w.trim().parse().map_err(|_| bad())?;
    if !(center.is_finite() && width.is_finite() && width > 0.0) {
        return Err(bad());
    }
    Ok(IntensityMap::Window { center, width })
}
