//! A libFuzzer-free fuzz loop that runs on stable in every `cargo test`:
//! corpus mails, mutated by a seeded generator (byte flips, cuts, spliced
//! mails, MIME and quoting tokens), go through parse → classify → plan.
//! Nothing may panic and no input may take more than [`BUDGET`].
//!
//! `MAILROOM_FUZZ_SECS` sets the run time (default 10 s); `MAILROOM_FUZZ_SEED`
//! replays a run. The coverage-guided target is `fuzz/` (cargo fuzz, nightly).
//! Inputs that ever failed are kept in `tests/corpus/crashes/` and replayed first.

use std::time::{Duration, Instant};

use mailroom::classify::{classify, suppresses_acknowledgement};
use mailroom::config::Config;
use mailroom::ingest::replay::{mail_files, read_file};
use mailroom::message::Message;
use mailroom::message::reply::new_part;
use mailroom::tickets::plan::{Facts, Policy, decide};
use mailroom::tickets::tag::TagFormat;

use super::common::corpus;

/// What one input may take (debug build): a guard against a runaway, not
/// a speed target (see tests/corpus.rs's).
const BUDGET: Duration = Duration::from_secs(10);

/// Fragments that steer mutations into the parsers' interesting paths.
const TOKENS: &[&[u8]] = &[
    b"\r\n\r\n",
    b"\n--B\n",
    b"\n--B--\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n",
    b"Content-Type: message/delivery-status\n\n",
    b"Content-Type: message/rfc822\n\n",
    b"Content-Type: text/rfc822-headers\n\n",
    b"Final-Recipient: rfc822; a@b.test\nAction: failed\nStatus: 5.1.1\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"Content-Disposition: attachment; filename*0*=UTF-8''%C3; filename*1*=%A4\n",
    b"=?utf-8?b?w6TDtsO8?=",
    b"=?iso-2022-jp?B?GyRC",
    b"From: <>\n",
    b"From: MAILER-DAEMON\n",
    b"Subject: Undelivered Mail Returned to Sender\n",
    b"X-Failed-Recipients: a@b.test\n",
    b"Auto-Submitted: auto-replied\n",
    b"\nOn Mon, 2 Mar 2026 at 10:00, A <a@b.test> wrote:\n> ",
    b"\n-----Original Message-----\nFrom: a\nSent: b\n",
    b"\n-- \n",
    b"\n```\n",
    b"\xff\xfe\xc3\x28\xe4\xf6",
    b"charset=gb2312",
];

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.truncate(at),
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            3 => {
                // Splice in a piece of another mail.
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(4096)).min(other.len());
                input.splice(at..at, other[from..to].iter().copied());
            }
            4 if at < input.len() => {
                let end = (at + rng.below(512)).min(input.len());
                input.drain(at..end);
            }
            5 => {
                // Repeat a chunk: deep nesting, long lines, many parts.
                let end = (at + rng.below(256)).min(input.len());
                let chunk = input[at..end].to_vec();
                for _ in 0..rng.below(64) {
                    input.splice(at..at, chunk.iter().copied());
                }
            }
            _ => input.extend(TOKENS[rng.below(TOKENS.len())]),
        }
    }
    input.truncate(2 << 20);
}

/// One input through the pure path; panics propagate.
pub fn exercise(data: &[u8], policy: &Policy) {
    if let Ok(msg) = Message::parse(data) {
        let class = classify(&msg, "provider.test");
        suppresses_acknowledgement(&msg, class);
        decide(&msg, class, &Facts::default(), policy, 1_772_442_000);
        for f in &msg.files {
            assert!(
                !f.file_name.is_empty() && !f.file_name.contains(['/', '\\']),
                "{:?}",
                f.file_name
            );
        }
    }
    new_part(&String::from_utf8_lossy(data));
}

#[test]
fn mutated_corpus_mail_never_panics_or_hangs() {
    let config = Config::default();
    let tag = TagFormat::new(&config.tickets.tag).unwrap();
    let own_addresses = config.own_addresses();
    let policy = Policy {
        config: &config,
        tag: &tag,
        ignore_rules: &[],
        own_addresses: &own_addresses,
    };
    let crashes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/crashes");
    if crashes.is_dir() {
        for file in mail_files(&[crashes]).unwrap() {
            exercise(&std::fs::read(&file).unwrap(), &policy);
        }
    }
    let Some(corpus) = corpus() else { return };
    let seeds: Vec<Vec<u8>> = mail_files(&[corpus])
        .unwrap()
        .iter()
        .flat_map(|f| read_file(f).unwrap())
        .map(|m| m.raw)
        .filter(|r| r.len() < 256 * 1024)
        .collect();
    let secs = std::env::var("MAILROOM_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed = std::env::var("MAILROOM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d61_696c_726f_6f6d);
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &seeds, &mut input);
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exercise(&input, &policy)));
        let took = t.elapsed();
        if result.is_err() || took > BUDGET {
            let path = std::env::temp_dir().join(format!("mailroom-fuzz-{seed}-{runs}.eml"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "input {runs} of seed {seed} {} (took {took:?}); saved to {}",
                if result.is_err() { "panicked" } else { "was too slow" },
                path.display()
            );
        }
        runs += 1;
    }
    eprintln!("mutations: {runs} inputs in {secs} s (seed {seed}), no panic, none over {BUDGET:?}");
}
