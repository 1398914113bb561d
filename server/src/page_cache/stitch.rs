//! Compressed bodies stitched from pieces compressed once and short texts stored as they are: the
//! cached page (see the module above) is the same for every reader but for a few words, so its fixed
//! pieces are compressed when the page is cut and each request only copies bytes around the
//! reader's own words.
//!
//! Both formats allow it without recompressing anything:
//! - **gzip** (RFC 1952 around RFC 1951's deflate): each piece is a raw deflate stream ended by a
//!   sync flush (an empty stored block, so it ends on a byte boundary and is not final), and a
//!   reader's words are a stored block. A back-reference never reaches outside its own piece (each
//!   was compressed on its own), so the pieces may sit anywhere. The trailer's CRC-32 and length are
//!   of the whole page, computed as it is written.
//! - **brotli** (RFC 7932): each piece is a "catable" bare stream (Dropbox's brotli crate: no window
//!   header, its first two bytes stored so its literal contexts never depend on what precedes it, no
//!   distance remembered from before it, ends byte-aligned and not last). A reader's words are an
//!   uncompressed meta-block. The stream opens with the window size and an empty metadata block
//!   that brings it to a byte boundary, and closes with an empty last meta-block.

use std::io::Write;

use brotli::enc::BrotliEncoderParams;
use flate2::{Compression, write::DeflateEncoder};

/// How a body is sent, from what the request's `Accept-Encoding` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` value, `None` for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// Deflate level for the fixed pieces: compressed once per room state, so the default level's
/// better ratio costs little (the per-request cost is copying).
const DEFLATE_LEVEL: u32 = 6;
/// Brotli quality for the fixed pieces, for the same reason; 5 is where brotli's own better
/// matching starts, at about the speed of deflate 6 on a page of this size.
const BROTLI_QUALITY: i32 = 5;
/// The brotli window every piece is compressed within (4 MiB), and that the stream declares.
const BROTLI_LGWIN: i32 = 22;
/// The most bytes a stored block (deflate) or an uncompressed meta-block (brotli) carries here.
const STORED_MAX: usize = 65_535;

/// Pieces shorter than this are stored as they are, like a reader's words: each encoder costs
/// ~0.2 ms to start whatever it is given, and a few hundred bytes gain little.
const COMPRESS_FROM: usize = 256;

/// A fixed piece of a page: its text, and (unless short) its text compressed for each encoding.
pub struct Piece {
    raw: String,
    compressed: Option<Compressed>,
}

struct Compressed {
    deflate: Vec<u8>,
    brotli: Vec<u8>,
}

impl Piece {
    pub fn new(raw: String) -> Piece {
        let compressed = (raw.len() >= COMPRESS_FROM).then(|| Compressed {
            deflate: deflate_piece(raw.as_bytes()),
            brotli: brotli_piece(raw.as_bytes()),
        });
        Piece { raw, compressed }
    }

    /// About its length in `encoding`.
    pub fn len(&self, encoding: Encoding) -> usize {
        match (encoding, &self.compressed) {
            (Encoding::Identity, _) | (_, None) => self.raw.len() + 8,
            (Encoding::Gzip, Some(c)) => c.deflate.len(),
            (Encoding::Brotli, Some(c)) => c.brotli.len(),
        }
    }
}

fn deflate_piece(raw: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(
        Vec::with_capacity(raw.len() / 3),
        Compression::new(DEFLATE_LEVEL),
    );
    // Writing into a Vec cannot fail; `flush` is deflate's sync flush: everything out, byte-aligned,
    // no final block.
    let _ = encoder.write_all(raw);
    let _ = encoder.flush();
    // Taken before the encoder is dropped: dropping it finishes the stream (into the emptied Vec).
    std::mem::take(encoder.get_mut())
}

fn brotli_piece(raw: &[u8]) -> Vec<u8> {
    // The stream's window for every piece: this encoder was 5-10x slower with a window fitted to
    // a piece of a few KB (measured: 11 ms against 1.1 ms for 19 KB).
    let params = BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: BROTLI_LGWIN,
        catable: true,
        appendable: true,
        bare_stream: true,
        byte_align: true,
        use_dictionary: false,
        magic_number: false,
        size_hint: raw.len(),
        ..BrotliEncoderParams::default()
    };
    let mut out = Vec::with_capacity(raw.len() / 3);
    // Reading a slice and writing a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut &raw[..], &mut out, &params);
    out
}

/// A body being written in one encoding: fixed pieces and the reader's words, in page order.
pub struct Body {
    encoding: Encoding,
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u32,
}

impl Body {
    pub fn new(encoding: Encoding, capacity: usize) -> Body {
        let mut out = Vec::with_capacity(capacity + 32);
        match encoding {
            Encoding::Identity => {}
            // ID1 ID2, deflate, no flags, no time, no extra flags, OS unknown.
            Encoding::Gzip => out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
            Encoding::Brotli => out.extend_from_slice(&brotli_start(BROTLI_LGWIN)),
        }
        Body {
            encoding,
            out,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    pub fn piece(&mut self, piece: &Piece) {
        match (self.encoding, &piece.compressed) {
            (Encoding::Identity, _) | (_, None) => self.text(&piece.raw),
            (Encoding::Gzip, Some(c)) => {
                self.out.extend_from_slice(&c.deflate);
                self.count(piece.raw.as_bytes());
            }
            (Encoding::Brotli, Some(c)) => self.out.extend_from_slice(&c.brotli),
        }
    }

    /// Text stored as it is (the reader's own words: a few dozen bytes).
    pub fn text(&mut self, text: &str) {
        let bytes = text.as_bytes();
        match self.encoding {
            Encoding::Identity => self.out.extend_from_slice(bytes),
            Encoding::Gzip => {
                for chunk in bytes.chunks(STORED_MAX) {
                    // BFINAL 0, BTYPE 00 (stored), then to the byte boundary: one zero byte, as
                    // every block before it ended on a boundary. LEN and its complement.
                    let len = chunk.len() as u16;
                    self.out.push(0);
                    self.out.extend_from_slice(&len.to_le_bytes());
                    self.out.extend_from_slice(&(!len).to_le_bytes());
                    self.out.extend_from_slice(chunk);
                }
                self.count(bytes);
            }
            Encoding::Brotli => {
                for chunk in bytes.chunks(STORED_MAX) {
                    // ISLAST 0, MNIBBLES 4 (coded 0), MLEN-1 in 16 bits, ISUNCOMPRESSED 1, then
                    // zero bits to the byte boundary: 24 bits.
                    let header = ((chunk.len() as u32 - 1) << 3) | (1 << 19);
                    self.out.extend_from_slice(&header.to_le_bytes()[..3]);
                    self.out.extend_from_slice(chunk);
                }
            }
        }
    }

    fn count(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        // gzip's ISIZE is the length modulo 2^32.
        self.len = self.len.wrapping_add(bytes.len() as u32);
    }

    pub fn finish(mut self) -> Vec<u8> {
        match self.encoding {
            Encoding::Identity => {}
            Encoding::Gzip => {
                // A final, empty block with the fixed codes (BFINAL 1, BTYPE 01, end-of-block).
                self.out.extend_from_slice(&[0x03, 0x00]);
                let crc = self.crc.clone().finalize();
                self.out.extend_from_slice(&crc.to_le_bytes());
                self.out.extend_from_slice(&self.len.to_le_bytes());
            }
            // ISLAST 1, ISLASTEMPTY 1.
            Encoding::Brotli => self.out.push(0x03),
        }
        self.out
    }
}

/// The window size (RFC 7932 §9.1, for 18–24: a 1 then `lgwin - 17` in three bits) and an empty
/// metadata meta-block (ISLAST 0, MNIBBLES coded 3, reserved 0, MSKIPBYTES 0) whose end is the next
/// byte boundary, where the first piece begins.
fn brotli_start(lgwin: i32) -> [u8; 2] {
    debug_assert!((18..=24).contains(&lgwin));
    let window = 1 | (((lgwin - 17) as u16) << 1); // 4 bits
    let metadata = 0b11 << 1; // ISLAST 0, MNIBBLES 3; reserved and MSKIPBYTES are zeros
    let bits = window | (metadata << 4);
    bits.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The body for `parts` (`Ok` a fixed piece, `Err` the reader's words), decoded by decoders that
    /// are not this module: flate2's gzip reader (zlib-rs) and the brotli decompressor crate.
    fn round_trip(parts: &[Result<&str, &str>]) {
        let pieces: Vec<Result<Piece, &str>> = parts
            .iter()
            .map(|p| p.map(|raw| Piece::new(raw.to_owned())))
            .collect();
        let expected: String = parts.iter().map(|p| p.unwrap_or_else(|t| t)).collect();
        for encoding in [Encoding::Identity, Encoding::Gzip, Encoding::Brotli] {
            let mut body = Body::new(encoding, 0);
            for part in &pieces {
                match part {
                    Ok(piece) => body.piece(piece),
                    Err(text) => body.text(text),
                }
            }
            let bytes = body.finish();
            let mut decoded = String::new();
            match encoding {
                Encoding::Identity => decoded = String::from_utf8(bytes).expect("utf-8"),
                Encoding::Gzip => {
                    let mut reader = flate2::read::GzDecoder::new(&bytes[..]);
                    reader.read_to_string(&mut decoded).expect("gzip");
                    // Nothing after the trailer: the stream is exactly one gzip member.
                    assert!(reader.into_inner().is_empty());
                }
                Encoding::Brotli => {
                    brotli::Decompressor::new(&bytes[..], 4096)
                        .read_to_string(&mut decoded)
                        .expect("brotli");
                }
            }
            assert_eq!(decoded.len(), expected.len(), "{encoding:?}");
            assert!(decoded == expected, "{encoding:?} differs");
        }
    }

    #[test]
    fn pieces_and_words_decode_to_the_page_in_every_encoding() {
        let html = "<li class=\"message\" data-key=\"e:1\"><p class=\"body\">step 1 of the rollout</p></li>".repeat(40);
        round_trip(&[
            Ok("<!DOCTYPE html><html><head>"),
            Err("0a1b2c"),
            Ok(&html),
            Err("Ann &amp; Bob"),
            Ok("</html>"),
        ]);
        // Words first and last, two side by side, empty ones, and a page with no words at all.
        round_trip(&[
            Err("nonce"),
            Ok(&html),
            Err(""),
            Err("Zoë"),
            Ok(""),
            Ok("<p>"),
            Err("end"),
        ]);
        round_trip(&[Ok(&html)]);
        round_trip(&[]);
    }

    #[test]
    fn long_words_and_pieces_past_a_block_and_a_window() {
        // Words longer than one stored block, pieces longer than the brotli window and than one
        // deflate block, with text that does and does not compress.
        let mut noise = String::new();
        let mut x: u32 = 12345;
        while noise.len() < 5_000_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            noise.push(char::from(b'a' + (x >> 16) as u8 % 26));
        }
        let words = "é".repeat(40_000); // 80 000 bytes: two stored blocks
        round_trip(&[Ok(&noise), Err(&words), Ok(&noise[..70_000]), Err("x")]);
    }

    #[test]
    fn a_piece_never_reaches_back_into_what_precedes_it() {
        // The second piece repeats the first: compressed alone it cannot refer to it, and the
        // stitched stream must decode the same whichever words sit between them.
        let text = "<li class=\"message\">the same line again</li>".repeat(100);
        for words in ["", "a", "<li class=\"message\">the same", "\u{1F600}"] {
            round_trip(&[Ok(&text), Err(words), Ok(&text), Err(words), Ok(&text)]);
        }
    }

    #[test]
    fn the_brotli_start_is_the_window_and_an_aligning_metadata_block() {
        // 22: 1, then 5 in three bits -> 0b1011; then 0, 0b11, 0, 0b00 -> 0x6b 0x00.
        assert_eq!(brotli_start(22), [0x6b, 0x00]);
    }
}
