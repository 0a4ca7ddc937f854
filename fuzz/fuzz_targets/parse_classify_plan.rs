//! Any bytes through the pure path a mail takes: parse (delivery report,
//! reply trimming, charsets, attachments included) → classify → the core's
//! plan, with no store. A panic or a hang here is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailroom::classify::{classify, suppresses_acknowledgement};
use mailroom::config::Config;
use mailroom::message::Message;
use mailroom::message::reply::new_part;
use mailroom::tickets::plan::{Facts, Policy, decide};
use mailroom::tickets::tag::TagFormat;

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on any panic, even one `Message::parse`
        // catches on purpose (mail-parser panics on some nesting): print
        // it instead. A panic that escapes is still a crash.
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    },
    |data: &[u8]| {
    let config = Config::default();
    let tag = TagFormat::new(&config.tickets.tag).expect("default tag format");
    let own_addresses = config.own_addresses();
    let policy = Policy {
        config: &config,
        tag: &tag,
        ignore_rules: &[],
        own_addresses: &own_addresses,
    };
    if let Ok(msg) = Message::parse(data) {
        let class = classify(&msg, "provider.test");
        suppresses_acknowledgement(&msg, class);
        decide(&msg, class, &Facts::default(), &policy, 1_772_442_000);
        for f in &msg.files {
            assert!(!f.file_name.is_empty() && !f.file_name.contains(['/', '\\']));
        }
    }
    // The trimmer also sees text that did not come through the parser.
    new_part(&String::from_utf8_lossy(data));
    }
);
