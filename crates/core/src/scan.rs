//! A share read from a picture of its QR code (a scan or photo of a share card, PNG or JPEG), with
//! `rqrr`. The QR text is checked like typed words: a code that is not a Custos share is named as
//! such.

use crate::error::{Error, Result};
use crate::sharing::Share;

/// Pictures larger than this many pixels are refused (a phone photo is about 12 million).
const MAX_PIXELS: u64 = 50_000_000;

/// The share in the QR code of `image` (the bytes of a PNG or JPEG file).
pub fn share_from_image(image: &[u8]) -> Result<Share> {
    let picture = image::load_from_memory(image)
        .map_err(|e| {
            Error::BadShare(format!(
                "the image cannot be read ({e}): use a PNG or JPEG picture of the share's QR code"
            ))
        })?
        .to_luma8();
    let (w, h) = picture.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Error::BadShare(format!(
            "the image is {w}×{h} pixels: crop it to the QR code or scale it down"
        )));
    }
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            picture.get_pixel(x as u32, y as u32).0[0]
        });
    let grids = prepared.detect_grids();
    if grids.is_empty() {
        return Err(Error::BadShare(
            "no QR code found in the image: photograph the card's QR code straight on, well lit and in focus".into(),
        ));
    }
    let mut refusal = None;
    for grid in grids {
        match grid.decode() {
            Ok((_, text)) => match Share::from_qr_text(&text) {
                Ok(share) => return Ok(share),
                Err(e) => refusal = Some(e),
            },
            Err(e) => {
                refusal = Some(Error::BadShare(format!(
                    "a QR code was found but could not be read ({e}): take a sharper picture"
                )))
            }
        }
    }
    Err(refusal.unwrap_or_else(|| Error::BadShare("no QR code found in the image".into())))
}
