//! One merged Parquet file per data type: symbol-major, assembled from the chunks' column
//! chunks ([`super::concat`]), or interleaved by `local_timestamp` with `--order time`.
//!
//! A merged file records its request ([`target::keys::REQUEST`]) and a fingerprint of its
//! inputs (each chunk's checksum, the range, the version); when the file on disk verifies and
//! carries the same fingerprint, there is nothing to do. A file of another request is refused
//! unless `--overwrite`.

use std::path::Path;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use twox_hash::XxHash3_64;

use std::io::{Read, Seek, Write};

use super::concat::concat;
use super::merge::{MergeError, MergeInput, merge};
use super::target::{self, Holder, OUTPUT_FORMAT, merged_holder};
use super::{Order, OutputContext, OutputError, OutputResult, OutputStatus, cancelled};
use crate::cache::Chunk;
use crate::parquet::atomic::AtomicFile;
use crate::parquet::encodings::output_properties;
use crate::parquet::sealed::{SealedError, SealedWriter, keys, verify_sealed_file};

/// Key of the inputs fingerprint in a merged output's footer.
pub(super) const META_INPUTS: &str = "tickvault.inputs";

/// The fingerprint of a merged output's inputs.
pub(crate) fn fingerprint(ctx: &OutputContext, chunks: &[Chunk]) -> String {
    let mut text = format!(
        "{OUTPUT_FORMAT}|{}|{}|{}|{}\n",
        crate::VERSION,
        ctx.data_type,
        ctx.range_label,
        ctx.order
    );
    text.push_str(&ctx.identity);
    text.push('\n');
    if !complete(chunks) {
        // An incomplete output also records when Tardis had exported up to.
        text.push_str(&format!("incomplete {:?}\n", ctx.exported_until_text()));
    }
    for c in chunks {
        text.push_str(&format!("{}:{:016x}\n", c.key, c.meta.checksum));
    }
    format!("{:016x}", XxHash3_64::oneshot_with_seed(0, text.as_bytes()))
}

/// Threads encoding a merged output's columns.
fn encode_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The existing file at `path`, if it is sound and made from inputs with fingerprint `fp`.
fn up_to_date(ctx: &OutputContext, path: &Path, fp: &str) -> Option<OutputResult> {
    if !path.exists() {
        return None;
    }
    match verify_sealed_file(path) {
        Ok(footer) if footer.get(keys::FORMAT) == Some(OUTPUT_FORMAT) && footer.get(META_INPUTS) == Some(fp) => {
            debug!("{} is up to date", path.display());
            Some(OutputResult {
                data_type: ctx.data_type.to_string(),
                path: path.to_path_buf(),
                rows: footer.num_rows,
                bytes: footer.file_bytes,
                status: OutputStatus::UpToDate,
                chunks_from_memory: 0,
                complete: footer.get(target::keys::COMPLETE) != Some("false"),
                exported_until: footer.get(target::keys::EXPORTED_UNTIL).map(str::to_string),
            })
        }
        Ok(_) => {
            debug!("{} was made from other inputs; rewriting it", path.display());
            None
        }
        Err(e) => {
            warn!("replacing {}: {}", path.display(), crate::error::chain(&e));
            None
        }
    }
}

/// Merges `chunks` (given in tie-break order: day, then symbol as requested) by
/// `local_timestamp`, decoding them and encoding the rows again.
fn interleave<W: Write + Read + Seek + Send>(
    ctx: &OutputContext,
    writer: &mut SealedWriter<W>,
    chunks: &[Chunk],
    cancel: &CancellationToken,
) -> Result<u64, MergeError<SealedError>> {
    let inputs = chunks
        .iter()
        .map(|c| MergeInput {
            decoded: ctx.resident.get(&c.key).cloned(),
            ..MergeInput::of(c)
        })
        .collect();
    merge(ctx.data_type, inputs, ctx.range, ctx.data_type.batch_rows(), |b| {
        cancelled(cancel)?;
        writer.write(&b)
    })
}

/// Writes (or confirms) one merged file from `chunks`, given in tie-break order (day, then
/// symbol as requested), in `ctx.order`.
///
/// # Errors
/// See [`OutputError`].
pub(crate) fn write_merged(
    ctx: &OutputContext,
    path: &Path,
    chunks: &[Chunk],
    cancel: &CancellationToken,
) -> Result<OutputResult, OutputError> {
    if let Holder::Other(what) = merged_holder(path, &ctx.identity)
        && !ctx.overwrite
    {
        return Err(OutputError::Refused {
            path: path.to_path_buf(),
            what,
        });
    }
    let fp = fingerprint(ctx, chunks);
    if let Some(done) = up_to_date(ctx, path, &fp) {
        return Ok(done);
    }
    let tmp = AtomicFile::create(path).map_err(OutputError::io("creating a file beside", path))?;
    let file = tmp.handle().map_err(OutputError::io("opening", tmp.path()))?;
    let write_err = OutputError::write(path);
    let props = output_properties(ctx.data_type);
    let mut writer = SealedWriter::new(file, ctx.data_type.schema(), props, encode_threads()).map_err(&write_err)?;
    let rows = match ctx.order {
        Order::Symbol => concat(ctx, &mut writer, chunks, cancel),
        Order::Time => interleave(ctx, &mut writer, chunks, cancel),
    }
    .map_err(OutputError::merge(path))?;
    let complete = complete(chunks);
    let mut kv = vec![
        (keys::FORMAT, OUTPUT_FORMAT.to_string()),
        (keys::VERSION, crate::VERSION.to_string()),
        (keys::SOURCE, ctx.source.clone()),
        (keys::ROWS, rows.to_string()),
        (META_INPUTS, fp),
        (target::keys::REQUEST, ctx.identity.clone()),
        (target::keys::SYMBOLS, ctx.symbols.join(",")),
        (target::keys::COMPLETE, complete.to_string()),
    ];
    // Only an incomplete output says when: a complete one depends on its chunks alone, so
    // two machines write it byte for byte the same.
    let exported_until = (!complete).then(|| ctx.exported_until_text()).flatten();
    if let Some(t) = &exported_until {
        kv.push((target::keys::EXPORTED_UNTIL, t.clone()));
    }
    let (sealed, _) = writer.finish(kv).map_err(&write_err)?;
    tmp.commit().map_err(OutputError::io("renaming into", path))?;
    Ok(OutputResult {
        data_type: ctx.data_type.to_string(),
        path: path.to_path_buf(),
        rows,
        bytes: sealed.file_bytes,
        status: OutputStatus::Written,
        chunks_from_memory: match ctx.order {
            Order::Symbol => 0,
            Order::Time => chunks.iter().filter(|c| ctx.resident.contains_key(&c.key)).count() as u64,
        },
        complete,
        exported_until,
    })
}

/// Whether every chunk is of a day Tardis had finished exporting.
pub(super) fn complete(chunks: &[Chunk]) -> bool {
    chunks.iter().all(|c| c.meta.complete)
}
