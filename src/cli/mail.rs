//! Commands about received mail: replay, messages, quarantine.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::output::{print_json, print_list, print_object};
use crate::error::{Error, Result};
use crate::ingest::replay::{mail_files, read_file};
use crate::pipeline::{Chain, Clock, Pipeline, Prepared, Summary};
use crate::store::{Store, views};

/// `mailroom replay`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Process each mail at the time of its Date header (for archives and fixtures).
    #[arg(long)]
    pub date_from_header: bool,
    /// Mails per transaction. A replay is bulk work: 300 rather than the
    /// daemon's 200 spreads each commit's sync over more mails (a 10,000-mail
    /// replay ×0.86 in time here), with a few MB more in memory.
    #[arg(long, default_value_t = 300)]
    pub batch: usize,
    /// .eml files, directories of them (name order) and mbox files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Replays files through the pipeline, a batch per transaction.
pub async fn replay(args: ReplayArgs, pipeline: Pipeline) -> Result<()> {
    if args.batch == 0 {
        return Err(Error::Usage("--batch must be at least 1".into()));
    }
    let clock = if args.date_from_header {
        Clock::DateHeader
    } else {
        Clock::Wall
    };
    let pipeline = pipeline.with_clock(clock);
    let files = mail_files(&args.paths)?;
    // Files are read, parsed and classified on a blocking thread one batch
    // ahead, while the current batch is written and committed here. A
    // batch is read only once the channel has room for it: parsed and held
    // until there is, it would be one batch more in memory for nothing.
    let (ready, mut batches) = tokio::sync::mpsc::channel::<Result<Prepared>>(1);
    let reader = pipeline.clone();
    let max = pipeline.config().intake.max_message_bytes;
    let size = args.batch;
    let runtime = tokio::runtime::Handle::current();
    let producer = tokio::task::spawn_blocking(move || {
        let mut files = files.into_iter().peekable();
        while files.peek().is_some() {
            let Ok(room) = runtime.block_on(ready.reserve()) else {
                return;
            };
            let mut batch = Vec::with_capacity(size);
            for file in files.by_ref() {
                match read_file(&file) {
                    Ok(mails) => batch.extend(mails.into_iter().map(|m| m.limited(max))),
                    Err(e) => {
                        room.send(Err(e));
                        return;
                    }
                }
                if batch.len() >= size {
                    break;
                }
            }
            if !batch.is_empty() {
                room.send(Ok(reader.prepare(batch)));
            }
        }
    });
    // Each batch is processed on a task of its own once it has its turn,
    // so the next one is decided while it is written (see Pipeline::turn).
    // On an error the batch in flight is still waited for: it commits if
    // it came before the error, and refuses to if it came after a batch
    // that failed, so what the store holds is a prefix of the input.
    let chain = Chain::default();
    let mut total = Summary::default();
    let mut in_flight: Option<tokio::task::JoinHandle<Result<Summary>>> = None;
    let mut failed = None;
    while let Some(batch) = batches.recv().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        let turn = pipeline.turn(&chain).await;
        let task = tokio::spawn({
            let pipeline = pipeline.clone();
            async move { Ok(pipeline.process_in_turn(turn, &batch).await?.0) }
        });
        if let Some(ahead) = in_flight.replace(task) {
            match joined(ahead).await {
                Ok(s) => total.add(&s),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    if let Some(last) = in_flight {
        match joined(last).await {
            Ok(s) => total.add(&s),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    // The reader ends on its own once the last batch is sent; a panic in
    // it is a bug, reported as such rather than as a usage error.
    if let Err(e) = producer.await {
        std::panic::resume_unwind(e.into_panic());
    }
    if args.json {
        print_json(&total)
    } else {
        println!("{total}");
        Ok(())
    }
}

/// A batch's task's result; its panic (a bug) goes on as a panic.
async fn joined(task: tokio::task::JoinHandle<Result<Summary>>) -> Result<Summary> {
    match task.await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// `mailroom messages …`
#[derive(Debug, Subcommand)]
pub enum MessagesCmd {
    /// Every processed mail with its outcome.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn messages(cmd: MessagesCmd, store: &Store) -> Result<()> {
    let mut conn = store.pool().acquire().await?;
    match cmd {
        MessagesCmd::List { json } => {
            let rows = views::messages(&mut conn).await?;
            print_list(
                &rows,
                json,
                &["id", "outcome", "class", "ticket", "from", "subject", "source"],
            )
        }
    }
}

/// `mailroom quarantine …`
#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// Quarantined mails waiting for a person.
    List {
        #[arg(long)]
        json: bool,
        /// Include mails already reprocessed.
        #[arg(long)]
        all: bool,
    },
    /// One quarantined mail.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
        /// Print the raw mail instead.
        #[arg(long)]
        raw: bool,
    },
    /// Run a quarantined mail through the pipeline again.
    Reprocess {
        id: i64,
        /// The whole mail (.eml) of one quarantined as too_large, of which
        /// only the headers were kept: the same mail, processed whole.
        #[arg(long, value_name = "FILE")]
        eml: Option<std::path::PathBuf>,
    },
}

pub async fn quarantine(cmd: QuarantineCmd, pipeline: Pipeline) -> Result<()> {
    let mut conn = pipeline.store().pool().acquire().await?;
    match cmd {
        QuarantineCmd::List { json, all } => {
            let rows = views::quarantine(&mut conn, None, all).await?;
            print_list(&rows, json, &["id", "reason", "from", "subject", "received_at"])
        }
        QuarantineCmd::Show { id, json, raw } => {
            let row = views::quarantine(&mut conn, Some(id), true)
                .await?
                .pop()
                .ok_or_else(|| Error::NotFound(format!("quarantined mail {id}")))?;
            if raw {
                let bytes = views::raw_mail(&mut conn, &row.raw_sha256).await?;
                std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| Error::io("stdout", e))?;
                return Ok(());
            }
            print_object(&row, json)
        }
        QuarantineCmd::Reprocess { id, eml } => {
            drop(conn);
            let whole = match eml {
                // A file the operator named and that is not there is a
                // usage error, as for `replay`.
                Some(path) => Some(std::fs::read(&path).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?),
                None => None,
            };
            let (outcome, again) = pipeline.reprocess(id, whole).await?;
            match again {
                // It is in the quarantine again, under a new id (this one
                // is released): the operator's next command needs that id.
                Some(new) if new != id => {
                    println!("quarantined mail {id}: {}, again as {new}", outcome.as_str())
                }
                _ => println!("quarantined mail {id}: {}", outcome.as_str()),
            }
            Ok(())
        }
    }
}
