//! IDX file loader (MNIST family), plain or gzip-compressed.
//!
//! The IDX format (LeCun et al., <http://yann.lecun.com/exdb/mnist/>) is a
//! big-endian header — a magic number `0x000008dd` (unsigned bytes, `dd`
//! dimensions), then `dd` 32-bit sizes — followed by the data in row-major
//! order. Images are `0x00000803` (count × rows × cols), labels `0x00000801`
//! (count).
//!
//! Invariants:
//! * A file starting with the gzip magic `1f 8b` is decompressed on the fly,
//!   whatever its name.
//! * Malformed or missing input yields a [`DataError`] naming the file and the
//!   fault; nothing here panics on file contents. The data length must match
//!   the header exactly (short → [`DataError::Truncated`], long →
//!   [`DataError::TrailingData`]); memory is never reserved from an unchecked
//!   header beyond a modest bound.
//! * A loaded [`DataSplit`]'s test set has the training set's feature count
//!   and class count, and every test label is below that class count.

use super::{DataError, DataSplit, Dataset};
use flate2::read::MultiGzDecoder;
use ndarray::Array2;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

/// Magic number of IDX image files (unsigned bytes, 3 dimensions).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of IDX label files (unsigned bytes, 1 dimension).
const LABELS_MAGIC: u32 = 0x0000_0801;
/// First two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Largest buffer reserved up front from a header's declared size (64 MiB);
/// beyond it the buffer grows with the data actually present.
const MAX_RESERVE: u64 = 64 << 20;

/// Default location of Fashion-MNIST, as installed by the Debian/Ubuntu
/// package `dataset-fashion-mnist`.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The four file names of an MNIST-family dataset, each tried as is and with
/// a `.gz` suffix: training images and labels, test images and labels.
const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn io_error(path: &Path, source: io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read. An
/// unexpected end of a compressed stream counts as the end of the input.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Opens `path`, decompressing it if it starts with the gzip magic.
fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DataError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => io_error(path, e),
    })?;
    let mut file = BufReader::new(file);
    let mut head = [0u8; 2];
    let got = read_full(&mut file, &mut head).map_err(|e| io_error(path, e))?;
    let stream = Cursor::new(head[..got].to_vec()).chain(file);
    Ok(if got == 2 && head == GZIP_MAGIC {
        Box::new(MultiGzDecoder::new(stream))
    } else {
        Box::new(stream)
    })
}

/// Reads an IDX file of unsigned bytes with `ndims` dimensions: its
/// dimensions and its data (whose length is their product).
fn read_idx(
    path: &Path,
    magic: u32,
    ndims: usize,
    kind: &'static str,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let mut r = open_maybe_gz(path)?;
    let header_len = 4 * (1 + ndims);
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut r, &mut header[..4]).map_err(|e| io_error(path, e))?;
    let truncated_header = |found: usize| DataError::Truncated {
        path: path.to_path_buf(),
        part: "header",
        expected: header_len as u64,
        found: found as u64,
    };
    if got < 4 {
        return Err(truncated_header(got));
    }
    let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            kind,
        });
    }
    let got = read_full(&mut r, &mut header[4..]).map_err(|e| io_error(path, e))?;
    if got < header_len - 4 {
        return Err(truncated_header(4 + got));
    }
    let dims: Vec<u32> = header[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| DataError::TooLarge {
            path: path.to_path_buf(),
            dims: dims.clone(),
        })?;

    let mut data = Vec::with_capacity(expected.min(MAX_RESERVE) as usize);
    match r.by_ref().take(expected).read_to_end(&mut data) {
        Ok(_) => {}
        // A cut-short gzip stream: `data` keeps what was decompressed.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(io_error(path, e)),
    }
    if (data.len() as u64) < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            part: "data",
            expected,
            found: data.len() as u64,
        });
    }
    // Reading past the end also checks a gzip stream's CRC and length.
    if read_full(&mut r, &mut [0u8; 1]).map_err(|e| io_error(path, e))? > 0 {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok((dims.into_iter().map(|d| d as usize).collect(), data))
}

/// Reads an IDX image file (magic `0x00000803`), plain or gzipped.
///
/// Returns `(count, rows, cols, pixels)`, with `pixels` row-major of length
/// `count · rows · cols`, one byte (0–255) per pixel.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (dims, data) = read_idx(
        path,
        IMAGES_MAGIC,
        3,
        "IDX images: unsigned bytes, 3 dimensions",
    )?;
    Ok((dims[0], dims[1], dims[2], data))
}

/// Reads an IDX label file (magic `0x00000801`), plain or gzipped: one byte
/// per label.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let (_, data) = read_idx(
        path,
        LABELS_MAGIC,
        1,
        "IDX labels: unsigned bytes, 1 dimension",
    )?;
    Ok(data)
}

/// Loads an image file and its label file as a [`Dataset`].
///
/// Features are pixel intensities scaled to `[0, 1]` (byte / 255), one row of
/// `rows · cols` features per image; `num_classes = max(10, max label + 1)`;
/// `groups = None`. The two files must hold the same number of samples.
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let (count, rows, cols, pixels) = read_idx_images(images)?;
    let label_bytes = read_idx_labels(labels)?;
    if label_bytes.len() != count {
        return Err(DataError::CountMismatch {
            images_path: images.to_path_buf(),
            images: count,
            labels_path: labels.to_path_buf(),
            labels: label_bytes.len(),
        });
    }
    let y: Vec<u32> = label_bytes.into_iter().map(u32::from).collect();
    let num_classes = y.iter().max().map_or(0, |&m| m as usize + 1).max(10);
    let x: Vec<f32> = pixels.into_iter().map(|p| f32::from(p) / 255.0).collect();
    let x = Array2::from_shape_vec((count, rows * cols), x)
        .expect("read_idx checked that the data length is count * rows * cols");
    Ok(Dataset {
        x,
        y,
        num_classes,
        groups: None,
    })
}

/// The first of `dir/stem`, `dir/stem.gz` that exists, or the names tried.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, [String; 2]> {
    let names = [stem.to_string(), format!("{stem}.gz")];
    names
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.exists())
        .ok_or(names)
}

/// Loads an MNIST-family dataset (MNIST, Fashion-MNIST, KMNIST, ...) from
/// `dir`, named `name` in the returned split and in errors.
///
/// Looks for `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each as is or with
/// `.gz` (the plain file wins when both exist). A missing directory or file
/// gives [`DataError::MissingFiles`] listing the names tried. The test set
/// takes the training set's class count; a test label at or above it gives
/// [`DataError::LabelOutOfRange`], a different image size
/// [`DataError::ShapeMismatch`].
pub fn load_mnist_family(dir: &Path, name: &str) -> Result<DataSplit, DataError> {
    let mut found = Vec::with_capacity(MNIST_FILES.len());
    let mut tried = Vec::new();
    for stem in MNIST_FILES {
        match find_file(dir, stem) {
            Ok(path) => found.push(path),
            Err(names) => tried.extend(names),
        }
    }
    if !tried.is_empty() {
        return Err(DataError::MissingFiles {
            dataset: name.to_string(),
            dir: dir.to_path_buf(),
            dir_exists: dir.is_dir(),
            tried,
            hint: String::new(),
        });
    }
    let train = load_idx_pair(&found[0], &found[1])?;
    let mut test = load_idx_pair(&found[2], &found[3])?;
    if test.dim() != train.dim() {
        return Err(DataError::ShapeMismatch {
            path: found[2].clone(),
            found: test.dim(),
            expected: train.dim(),
        });
    }
    if let Some((index, &label)) = test
        .y
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= train.num_classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: found[3].clone(),
            index,
            label,
            num_classes: train.num_classes,
        });
    }
    test.num_classes = train.num_classes;
    Ok(DataSplit {
        name: name.to_string(),
        train,
        test,
    })
}

/// Loads Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 60 000 training and
/// 10 000 test images of 28 × 28 = 784 features in `[0, 1]`, 10 classes.
///
/// `dir` defaults to [`FASHION_MNIST_DIR`]. When files are missing the error
/// says how to get them.
pub fn fashion_mnist(dir: Option<&Path>) -> Result<DataSplit, DataError> {
    let dir = dir.unwrap_or(Path::new(FASHION_MNIST_DIR));
    load_mnist_family(dir, "fashion-mnist").map_err(|e| match e {
        DataError::MissingFiles {
            dataset,
            dir,
            dir_exists,
            tried,
            ..
        } => DataError::MissingFiles {
            dataset,
            dir,
            dir_exists,
            tried,
            hint: ". To fix: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), \
                   or download the four files from \
                   https://github.com/zalandoresearch/fashion-mnist into a directory \
                   and set `data.path` to it"
                .to_string(),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use tempfile::TempDir;

    fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `n` images of 2 × 3 pixels with pixel i of image k = 10 k + i.
    fn images(n: u32) -> Vec<u8> {
        let px: Vec<u8> = (0..n * 6).map(|i| (10 * (i / 6) + i % 6) as u8).collect();
        idx_bytes(IMAGES_MAGIC, &[n, 2, 3], &px)
    }

    fn labels(ls: &[u8]) -> Vec<u8> {
        idx_bytes(LABELS_MAGIC, &[ls.len() as u32], ls)
    }

    /// Writes a complete family; `gzip[i]` chooses the form of file i.
    fn write_family(dir: &TempDir, gzip: [bool; 4], train: &[u8], test: &[u8]) {
        let contents = [
            images(train.len() as u32),
            labels(train),
            images(test.len() as u32),
            labels(test),
        ];
        for ((stem, bytes), gzip) in MNIST_FILES.iter().zip(contents).zip(gzip) {
            if gzip {
                write(dir, &format!("{stem}.gz"), &gz(&bytes));
            } else {
                write(dir, stem, &bytes);
            }
        }
    }

    #[test]
    fn reads_plain_and_gzipped_files_whatever_their_names() {
        let dir = TempDir::new().unwrap();
        let img = images(4);
        let expected_px: Vec<u8> = img[16..].to_vec();
        for path in [
            write(&dir, "plain", &img),
            write(&dir, "zipped.gz", &gz(&img)),
            write(&dir, "zipped-no-extension", &gz(&img)),
            write(&dir, "plain-with-extension.gz", &img),
        ] {
            let (n, rows, cols, px) = read_idx_images(&path).unwrap();
            assert_eq!((n, rows, cols), (4, 2, 3), "{}", path.display());
            assert_eq!(px, expected_px);
        }
        let ls = [3, 1, 4, 1, 5];
        for path in [
            write(&dir, "l", &labels(&ls)),
            write(&dir, "l.gz", &gz(&labels(&ls))),
        ] {
            assert_eq!(read_idx_labels(&path).unwrap(), ls);
        }
        // Zero images is a valid (empty) file.
        let empty = write(&dir, "empty", &images(0));
        assert_eq!(read_idx_images(&empty).unwrap(), (0, 2, 3, vec![]));
    }

    #[test]
    fn pair_scales_pixels_and_counts_classes() {
        let dir = TempDir::new().unwrap();
        let img = write(&dir, "i", &gz(&images(3)));
        let d = load_idx_pair(&img, &write(&dir, "l", &labels(&[0, 7, 2]))).unwrap();
        assert_eq!(d.x.dim(), (3, 6));
        assert_eq!(d.y, vec![0, 7, 2]);
        assert_eq!(d.num_classes, 10, "at least 10 for the MNIST family");
        assert!(d.groups.is_none());
        assert_eq!(d.x[[2, 5]], 25.0 / 255.0);
        assert_eq!(d.x[[1, 0]], 10.0 / 255.0);
        let d = load_idx_pair(&img, &write(&dir, "l2", &labels(&[0, 12, 2]))).unwrap();
        assert_eq!(d.num_classes, 13);
        // Full byte range maps onto [0, 1].
        let px = write(&dir, "px", &idx_bytes(IMAGES_MAGIC, &[1, 1, 2], &[0, 255]));
        let d = load_idx_pair(&px, &write(&dir, "l3", &labels(&[1]))).unwrap();
        assert_eq!(d.x.row(0).to_vec(), vec![0.0, 1.0]);
    }

    /// Asserts the error's message names `path`, and returns the error.
    fn err_naming(r: Result<impl std::fmt::Debug, DataError>, path: &Path) -> DataError {
        let e = r.expect_err("malformed input must be an error");
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string()),
            "{msg:?} should name {}",
            path.display()
        );
        e
    }

    #[test]
    fn missing_file_is_reported() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("nope-idx3-ubyte");
        let e = err_naming(read_idx_images(&path), &path);
        assert!(matches!(e, DataError::MissingFile { .. }), "{e:?}");
        // A directory in place of a file is an I/O error, not a panic.
        let e = err_naming(read_idx_labels(dir.path()), dir.path());
        assert!(matches!(e, DataError::Io { .. }), "{e:?}");
    }

    #[test]
    fn bad_magic_is_reported() {
        let dir = TempDir::new().unwrap();
        let lab = write(&dir, "labels-as-images", &gz(&labels(&[1, 2])));
        let e = err_naming(read_idx_images(&lab), &lab);
        assert!(
            matches!(
                e,
                DataError::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{e:?}"
        );
        let img = write(&dir, "images-as-labels", &images(1));
        let e = err_naming(read_idx_labels(&img), &img);
        assert!(
            matches!(
                e,
                DataError::BadMagic {
                    found: 0x803,
                    expected: 0x801,
                    ..
                }
            ),
            "{e:?}"
        );
        // A float IDX file (type 0x0d) is not accepted either.
        let f = write(&dir, "floats", &idx_bytes(0x0d03, &[1, 1, 1], &[0; 4]));
        assert!(matches!(
            read_idx_images(&f),
            Err(DataError::BadMagic { found: 0x0d03, .. })
        ));
        let text = write(&dir, "text", b"hello world, not idx");
        assert!(matches!(
            read_idx_labels(&text),
            Err(DataError::BadMagic { .. })
        ));
    }

    #[test]
    fn truncated_files_are_reported() {
        let dir = TempDir::new().unwrap();
        let img = images(3);
        let cases = [
            ("empty", Vec::new(), "header", 16, 0),
            ("short-magic", img[..3].to_vec(), "header", 16, 3),
            ("short-header", img[..10].to_vec(), "header", 16, 10),
            ("short-data", img[..img.len() - 1].to_vec(), "data", 18, 17),
            ("short-data.gz", gz(&img[..20]), "data", 18, 4),
        ];
        for (name, bytes, part, expected, found) in cases {
            let path = write(&dir, name, &bytes);
            let e = err_naming(read_idx_images(&path), &path);
            match e {
                DataError::Truncated {
                    part: p,
                    expected: x,
                    found: f,
                    ..
                } => {
                    assert_eq!((p, x, f), (part, expected, found), "{name}")
                }
                other => panic!("{name}: expected Truncated, got {other:?}"),
            }
        }
        // A gzip stream cut in the middle of the data.
        let big = idx_bytes(
            LABELS_MAGIC,
            &[5000],
            &(0..5000)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<_>>(),
        );
        let zipped = gz(&big);
        let cut = write(&dir, "cut.gz", &zipped[..zipped.len() / 2]);
        let e = err_naming(read_idx_labels(&cut), &cut);
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    part: "data",
                    expected: 5000,
                    ..
                }
            ),
            "{e:?}"
        );
        // A header declaring 4 · 10⁹ labels fails fast, without reserving them.
        let huge = write(
            &dir,
            "huge",
            &idx_bytes(LABELS_MAGIC, &[4_000_000_000], &[1, 2]),
        );
        assert!(matches!(
            read_idx_labels(&huge),
            Err(DataError::Truncated { found: 2, .. })
        ));
        // Dimensions whose product overflows.
        let over = write(&dir, "over", &idx_bytes(IMAGES_MAGIC, &[u32::MAX; 3], &[]));
        let e = err_naming(read_idx_images(&over), &over);
        assert!(matches!(e, DataError::TooLarge { .. }), "{e:?}");
    }

    #[test]
    fn trailing_and_corrupt_data_are_reported() {
        let dir = TempDir::new().unwrap();
        let mut long = labels(&[1, 2, 3]);
        long.push(9);
        for path in [
            write(&dir, "long", &long),
            write(&dir, "long.gz", &gz(&long)),
        ] {
            let e = err_naming(read_idx_labels(&path), &path);
            assert!(
                matches!(e, DataError::TrailingData { expected: 3, .. }),
                "{e:?}"
            );
        }
        let mut bad = GZIP_MAGIC.to_vec();
        bad.extend([0xff; 30]);
        let path = write(&dir, "corrupt.gz", &bad);
        let e = err_naming(read_idx_labels(&path), &path);
        assert!(matches!(e, DataError::Io { .. }), "{e:?}");
    }

    #[test]
    fn count_mismatch_is_reported() {
        let dir = TempDir::new().unwrap();
        let img = write(&dir, "imgs", &images(3));
        let lab = write(&dir, "labs", &labels(&[1, 2]));
        let e = err_naming(load_idx_pair(&img, &lab), &img);
        assert!(e.to_string().contains(&lab.display().to_string()));
        assert!(
            matches!(
                e,
                DataError::CountMismatch {
                    images: 3,
                    labels: 2,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn family_loads_mixed_plain_and_gzipped_files() {
        let dir = TempDir::new().unwrap();
        write_family(&dir, [true, false, false, true], &[1, 0, 9, 3], &[2, 2]);
        let s = load_mnist_family(dir.path(), "toy").unwrap();
        assert_eq!(s.name, "toy");
        assert_eq!((s.train.len(), s.test.len()), (4, 2));
        assert_eq!((s.train.dim(), s.test.dim()), (6, 6));
        assert_eq!((s.train.num_classes, s.test.num_classes), (10, 10));
        assert_eq!(s.test.y, vec![2, 2]);
        // When both forms exist the plain file is used.
        write(&dir, MNIST_FILES[3], &labels(&[5, 6]));
        assert_eq!(
            load_mnist_family(dir.path(), "toy").unwrap().test.y,
            vec![5, 6]
        );
        // The test set takes the training class count.
        let dir = TempDir::new().unwrap();
        write_family(&dir, [false; 4], &[0, 11], &[3]);
        assert_eq!(
            load_mnist_family(dir.path(), "toy")
                .unwrap()
                .test
                .num_classes,
            12
        );
    }

    #[test]
    fn family_reports_test_labels_and_shapes_that_do_not_fit_training() {
        let dir = TempDir::new().unwrap();
        write_family(&dir, [false; 4], &[0, 1, 2], &[4, 200]);
        let test_labels = dir.path().join(MNIST_FILES[3]);
        let e = err_naming(load_mnist_family(dir.path(), "toy"), &test_labels);
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 200,
                    num_classes: 10,
                    ..
                }
            ),
            "{e:?}"
        );
        write(&dir, MNIST_FILES[3], &labels(&[4, 2]));
        let test_images = write(
            &dir,
            MNIST_FILES[2],
            &idx_bytes(IMAGES_MAGIC, &[2, 1, 1], &[0, 1]),
        );
        let e = err_naming(load_mnist_family(dir.path(), "toy"), &test_images);
        assert!(
            matches!(
                e,
                DataError::ShapeMismatch {
                    found: 1,
                    expected: 6,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn family_lists_the_file_names_tried() {
        let root = TempDir::new().unwrap();
        let missing = root.path().join("no-such-dir");
        let e = load_mnist_family(&missing, "toy").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("directory does not exist") && msg.contains("no-such-dir"),
            "{msg}"
        );
        match &e {
            DataError::MissingFiles {
                tried,
                dir_exists: false,
                ..
            } => {
                let all: Vec<String> = MNIST_FILES
                    .iter()
                    .flat_map(|s| [s.to_string(), format!("{s}.gz")])
                    .collect();
                assert_eq!(tried, &all);
            }
            other => panic!("expected MissingFiles, got {other:?}"),
        }
        // Only the training files present: exactly the test names are listed.
        write(&root, "train-images-idx3-ubyte.gz", &gz(&images(1)));
        write(&root, "train-labels-idx1-ubyte", &labels(&[1]));
        let e = load_mnist_family(root.path(), "toy").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("train-"), "{msg}");
        for name in [
            "t10k-images-idx3-ubyte",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte",
            "t10k-labels-idx1-ubyte.gz",
        ] {
            assert!(msg.contains(name), "{msg} should list {name}");
        }
        assert!(matches!(
            e,
            DataError::MissingFiles {
                dir_exists: true,
                ..
            }
        ));
    }

    #[test]
    fn fashion_mnist_missing_files_say_how_to_fix() {
        let dir = TempDir::new().unwrap();
        let msg = fashion_mnist(Some(dir.path())).unwrap_err().to_string();
        for needle in [
            "fashion-mnist",
            "apt-get install dataset-fashion-mnist",
            "https://github.com/zalandoresearch/fashion-mnist",
            "data.path",
            "t10k-labels-idx1-ubyte.gz",
        ] {
            assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
        }
    }

    #[test]
    fn loads_the_real_fashion_mnist_when_installed() {
        let dir = Path::new(FASHION_MNIST_DIR);
        if !dir.exists() {
            println!(
                "SKIPPED: {FASHION_MNIST_DIR} not found (apt-get install dataset-fashion-mnist)"
            );
            return;
        }
        let s = fashion_mnist(None).unwrap();
        assert_eq!(s.name, "fashion-mnist");
        assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
        assert_eq!((s.train.dim(), s.test.dim()), (784, 784));
        assert_eq!((s.train.num_classes, s.test.num_classes), (10, 10));
        for d in [&s.train, &s.test] {
            assert!(d.x.iter().all(|&p| (0.0..=1.0).contains(&p)));
            assert!(d.x.iter().any(|&p| p == 1.0) && d.x.iter().any(|&p| p == 0.0));
            // Fashion-MNIST is balanced: 6000 / 1000 of each class.
            let mut counts = [0; 10];
            for &y in &d.y {
                counts[y as usize] += 1;
            }
            assert_eq!(counts, [d.len() / 10; 10]);
        }
    }
}
