//! Replay, tickets, outbox, quarantine and messages from the command line.

use super::*;

// ---------------------------------------------------------------------- replay

fn replayed_env() -> Env {
    let env = Env::new();
    env.import(DIRECTORY);
    env.write("in/01-request.eml", request());
    env.write("in/02-reply.eml", reply());
    env.write("in/03-stranger.eml", stranger());
    env
}

#[test]
fn replay_summary_and_idempotency() {
    let env = replayed_env();
    let summary = env.replay(&["in"]);
    assert_eq!(
        summary,
        json!({
            "processed": 3, "new_tickets": 2, "updates": 1, "contacts_created": 1,
            "ignored": 0, "duplicates": 0, "quarantined": 0, "notifications_queued": 4, "notifications": 4
        })
    );
    let jean = env.json(&["contacts", "show", "jean.bernard@acme.fr", "--json"]);
    assert_eq!(
        (jean["first_name"].clone(), jean["last_name"].clone()),
        (json!("Jean"), json!("Bernard"))
    );
    assert_eq!(
        (jean["account"].clone(), jean["created_by"].clone()),
        (json!("OCN-1001"), json!("auto"))
    );

    let lists =
        |env: &Env| ["tickets", "contacts", "outbox", "messages"].map(|what| env.list(&[what, "list", "--json"]));
    let before = lists(&env);
    let again = env.replay(&["in"]);
    assert_eq!(again["processed"], 3);
    assert_eq!(again["duplicates"], 3);
    for key in [
        "new_tickets",
        "updates",
        "contacts_created",
        "ignored",
        "quarantined",
        "notifications",
    ] {
        assert_eq!(again[key], 0, "{key} on second replay: {again}");
    }
    let after = lists(&env);
    assert_eq!(after[0], before[0], "tickets changed");
    assert_eq!(after[1], before[1], "contacts changed");
    assert_eq!(after[2], before[2], "outbox changed");
}

#[test]
fn replay_without_json_prints_a_sentence() {
    let env = replayed_env();
    let out = env.ok(&["replay", &env.path("in/01-request.eml")]);
    assert!(out.contains("processed 1") && out.contains("new tickets 1"), "{out}");
    env.fail2(&["replay", "--batch", "0", &env.path("in")]);
    env.fail2(&["replay"]);
    // A directory with no mail in it is said to be so, not only counted.
    std::fs::create_dir_all(env.path("empty")).unwrap();
    std::fs::write(env.path("empty/notes.md"), "not mail").unwrap();
    let out = env.run(&["replay", &env.path("empty")]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no mail files in this directory"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("processed 0"));
}

// --------------------------------------------------------------------- tickets

/// `tickets show` names each attachment by its SHA-256 (with a path only
/// for one kept as a file); `tickets attachment` writes its bytes out, to
/// stdout or `--output`, and names a hash the ticket does not carry.
#[test]
fn tickets_attachment_writes_the_bytes_out() {
    let env = Env::new();
    env.import(DIRECTORY);
    let raw = "From: Marie Dupont <marie.dupont@acme.fr>\r\nTo: support@provider.test\r\nSubject: Logs\r\n\
Message-ID: <logs-cli@acme.fr>\r\nDate: Mon, 2 Mar 2026 08:31:00 +0100\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nLogs attached.\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"dump.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAECA//+/fw=\r\n--B--\r\n";
    env.write("in/01.eml", raw);
    env.replay(&["in"]);
    let detail = env.json(&["tickets", "show", "1", "--json"]);
    let a = &detail["attachments"][0];
    assert_eq!(
        (a["file_name"].as_str(), a["in_store"].as_bool()),
        (Some("dump.bin"), Some(true)),
        "{a}"
    );
    assert!(a["path"].is_null(), "{a}");
    let sha = a["sha256"].as_str().unwrap();
    let bytes = [0u8, 1, 2, 3, 0xff, 0xfe, 0xfd, 0xfc];
    assert_eq!(env.run(&["tickets", "attachment", "1", sha]).stdout, bytes);
    let out = env.path("dump.bin");
    env.ok(&["tickets", "attachment", "1", sha, "--output", &out]);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert!(
        env.ok(&["tickets", "show", "1"])
            .contains(&format!("sha256 {sha} in the store"))
    );
    let err = env.fail2(&["tickets", "attachment", "1", &"0".repeat(64)]);
    assert!(err.contains("not found") && err.contains("ticket 1"), "{err}");
}

#[test]
fn tickets_list_show_and_close() {
    let env = replayed_env();
    env.replay(&["in"]);
    let tickets = env.list(&["tickets", "list", "--json"]);
    assert_fields(
        &tickets,
        &[
            "number",
            "subject",
            "status",
            "requester",
            "account",
            "service",
            "messages",
            "created_at",
            "updated_at",
        ],
    );
    assert_eq!(tickets.len(), 2);
    let t1 = &tickets[0];
    assert_eq!(t1["number"], 1);
    assert_eq!(t1["subject"], "Ethernet LON/ETH/000123 down since 08:00");
    assert_eq!(t1["status"], "open");
    assert_eq!(t1["requester"], "marie.dupont@acme.fr");
    assert_eq!(t1["account"], "OCN-1001");
    assert_eq!(t1["service"], "LON/ETH/000123");
    assert_eq!(t1["messages"], 2);
    assert_eq!(t1["created_at"], "2026-03-02T07:31:00Z");
    assert_eq!(t1["updated_at"], "2026-03-02T08:05:00Z");
    let t2 = &tickets[1];
    assert_eq!(
        (t2["number"].clone(), t2["subject"].clone()),
        (json!(2), json!("Invoice question"))
    );
    assert_eq!(
        (t2["requester"].clone(), t2["service"].clone(), t2["messages"].clone()),
        (json!("jean.bernard@acme.fr"), Value::Null, json!(1))
    );

    let detail = env.json(&["tickets", "show", "1", "--json"]);
    assert_eq!(detail["number"], 1);
    // The count under its own key: `messages` twice in one object made
    // JSON readers keep either the count or the conversation.
    assert_eq!(detail["message_count"], 2);
    let shown = env.ok(&["tickets", "show", "1", "--json"]);
    assert_eq!(shown.matches("\"messages\":").count(), 1, "{shown}");
    let msgs = detail["messages"].as_array().expect("messages array");
    assert_fields(msgs, &["direction", "from", "subject", "text"]);
    let incoming: Vec<&Value> = msgs.iter().filter(|m| m["direction"] == "in").collect();
    assert_eq!(incoming.len(), 2, "{msgs:#?}");
    assert_eq!(incoming[0]["from"], "marie.dupont@acme.fr");
    assert_eq!(incoming[0]["subject"], "Ethernet LON/ETH/000123 down since 08:00");
    assert!(
        incoming[0]["text"]
            .as_str()
            .unwrap()
            .contains("has been down since 08:00"),
        "{}",
        incoming[0]
    );
    assert!(
        incoming[1]["text"].as_str().unwrap().contains("no light on port 2"),
        "{}",
        incoming[1]
    );
    let outgoing: Vec<&Value> = msgs.iter().filter(|m| m["direction"] == "out").collect();
    assert!(
        !outgoing.is_empty(),
        "outgoing notifications are part of the conversation"
    );
    assert!(
        outgoing.iter().all(|m| m["from"] == "support@provider.test"),
        "{outgoing:#?}"
    );

    let out = env.ok(&["tickets", "close", "1"]);
    assert!(out.contains("ticket 1"), "{out}");
    let closed = env.list(&["tickets", "list", "--status", "closed", "--json"]);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0]["number"].clone(), closed[0]["status"].clone()),
        (json!(1), json!("closed"))
    );
    let open = env.list(&["tickets", "list", "--status", "open", "--json"]);
    assert_eq!(
        open.iter().map(|t| t["number"].clone()).collect::<Vec<_>>(),
        vec![json!(2)]
    );
    let outbox = env.list(&["outbox", "list", "--json"]);
    assert!(
        outbox
            .iter()
            .any(|o| o["event"] == "ticket_closed" && o["to"] == "marie.dupont@acme.fr"),
        "{outbox:#?}"
    );
    // The close answers the ticket's first mail, for clients that thread by
    // In-Reply-To alone.
    assert!(
        outbox
            .iter()
            .filter(|o| o["event"] == "ticket_closed")
            .all(|o| o["in_reply_to"] == REQUEST_ID),
        "{outbox:#?}"
    );

    let err = env.fail2(&["tickets", "close", "1"]);
    assert!(err.contains("already closed"), "{err}");
    env.fail2(&["tickets", "list", "--status", "shut"]);
}

/// A requester the directory moves to another customer is told nothing
/// more of the old one's ticket: not its updates, not its close.
#[test]
fn a_requester_moved_to_another_account_is_not_told_of_the_old_ticket() {
    let env = Env::new();
    env.import(DIRECTORY);
    env.write("in/01-request.eml", request());
    env.replay(&["in"]);
    env.ok(&["contacts", "update", "marie.dupont@acme.fr", "--account", "OCN-2002"]);
    let in_reply_to = format!("In-Reply-To: <{REQUEST_ID}>");
    env.write(
        "more/01-noc.eml",
        mail(
            "NOC <noc@acme.fr>",
            "noc-answer-1@acme.fr",
            "Mon, 2 Mar 2026 09:10:00 +0100",
            "Re: Ethernet LON/ETH/000123 down since 08:00",
            &[in_reply_to.as_str()],
            "We see the alarm too.",
        ),
    );
    let summary = env.replay(&["more"]);
    assert_eq!(summary["updates"], json!(1), "{summary}");
    env.ok(&["tickets", "close", "1"]);
    let outbox = env.list(&["outbox", "list", "--json"]);
    let to_marie: Vec<&serde_json::Value> = outbox
        .iter()
        .filter(|o| o["to"] == "marie.dupont@acme.fr")
        .map(|o| &o["event"])
        .collect();
    // Only what she was sent while at Acme: the acknowledgement.
    assert_eq!(to_marie, vec![&json!("acknowledgement")], "{outbox:#?}");
    assert!(
        outbox.iter().any(|o| o["event"] == "ticket_closed"),
        "the ticket's subscribers are still told: {outbox:#?}"
    );
}

// ---------------------------------------------------------------------- outbox

#[test]
fn outbox_rows_have_documented_fields() {
    let env = replayed_env();
    env.replay(&["in"]);
    let rows = env.list(&["outbox", "list", "--json"]);
    assert_fields(
        &rows,
        &[
            "id",
            "ticket",
            "to",
            "language",
            "subject",
            "status",
            "message_id",
            "in_reply_to",
        ],
    );
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for r in &rows {
        assert_eq!(r["status"], "queued");
        let mid = r["message_id"].as_str().expect("message_id");
        assert!(mid.ends_with("@provider.test"), "{mid}");
    }
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "message ids are unique");

    let ack = rows
        .iter()
        .find(|r| r["event"] == "acknowledgement" && r["to"] == "marie.dupont@acme.fr")
        .expect("ack");
    assert_eq!(ack["ticket"], 1);
    assert_eq!(ack["language"], "fr");
    assert_eq!(ack["subject"], "[#1] Ethernet LON/ETH/000123 down since 08:00");
    assert_eq!(ack["in_reply_to"], REQUEST_ID);
    let noc = rows
        .iter()
        .find(|r| r["event"] == "new_ticket")
        .expect("new_ticket row");
    assert_eq!(
        (noc["to"].clone(), noc["ticket"].clone(), noc["language"].clone()),
        (json!("noc@acme.fr"), json!(1), json!("fr"))
    );
    let upd = rows
        .iter()
        .find(|r| r["event"] == "ticket_updated")
        .expect("ticket_updated row");
    assert_eq!(
        (upd["to"].clone(), upd["in_reply_to"].clone()),
        (json!("noc@acme.fr"), json!(REPLY_ID))
    );
    let ack2 = rows
        .iter()
        .find(|r| r["to"] == "jean.bernard@acme.fr")
        .expect("ack to stranger");
    assert_eq!(
        (ack2["event"].clone(), ack2["ticket"].clone()),
        (json!("acknowledgement"), json!(2))
    );
    assert_eq!(ack2["subject"], "[#2] Invoice question");
}

// ------------------------------------------------------------------ quarantine

fn quarantined_stranger() -> (Env, Vec<u8>, String) {
    let env = Env::with_config("\n[contacts]\nauto_create = false\n");
    env.import(DIRECTORY);
    let raw = stranger();
    env.write("in/01-stranger.eml", &raw);
    let summary = env.replay(&["in"]);
    assert_eq!(
        (summary["quarantined"].clone(), summary["contacts_created"].clone()),
        (json!(1), json!(0))
    );
    let rows = env.list(&["quarantine", "list", "--json"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let id = rows[0]["id"].to_string();
    (env, raw, id)
}

#[test]
fn unknown_sender_is_quarantined_with_raw_kept() {
    let (env, raw, id) = quarantined_stranger();
    assert!(
        env.run(&["contacts", "show", "jean.bernard@acme.fr"]).status.code() == Some(2),
        "no contact created"
    );
    assert!(env.list(&["tickets", "list", "--json"]).is_empty());
    let rows = env.list(&["quarantine", "list", "--json"]);
    assert_fields(&rows, &["id", "reason", "from", "subject", "received_at"]);
    let q = &rows[0];
    assert_eq!(q["reason"], "unknown_sender");
    assert_eq!(q["from"], "jean.bernard@acme.fr");
    assert_eq!(q["subject"], "Invoice question");
    assert_eq!(q["received_at"], "2026-03-02T09:15:00Z");
    assert_eq!(
        env.json(&["quarantine", "show", &id, "--json"])["reason"],
        "unknown_sender"
    );

    let shown = env.run(&["quarantine", "show", &id, "--raw"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(shown.stdout, raw, "raw bytes are kept exactly");
    let messages = env.list(&["messages", "list", "--json"]);
    assert_eq!(
        (messages[0]["outcome"].clone(), messages[0]["ticket"].clone()),
        (json!("quarantined"), Value::Null)
    );
}

#[test]
fn quarantine_reprocess_after_adding_the_sender() {
    let (env, _raw, id) = quarantined_stranger();
    env.ok(&[
        "contacts",
        "add",
        "jean.bernard@acme.fr",
        "--first-name",
        "Jean",
        "--last-name",
        "Bernard",
        "--account",
        "OCN-1001",
    ]);
    let out = env.ok(&["quarantine", "reprocess", &id]);
    assert!(out.contains("new_ticket"), "{out}");
    let tickets = env.list(&["tickets", "list", "--json"]);
    assert_eq!(tickets.len(), 1);
    assert_eq!(
        (tickets[0]["requester"].clone(), tickets[0]["subject"].clone()),
        (json!("jean.bernard@acme.fr"), json!("Invoice question"))
    );
    assert!(env.list(&["quarantine", "list", "--json"]).is_empty());
    assert_eq!(env.list(&["quarantine", "list", "--all", "--json"]).len(), 1);
    let messages = env.list(&["messages", "list", "--json"]);
    assert_eq!(messages.len(), 1, "the message row is updated, not duplicated");
    assert_eq!(
        (messages[0]["outcome"].clone(), messages[0]["ticket"].clone()),
        (json!("new_ticket"), json!(1))
    );
    // A second reprocess is refused.
    env.fail2(&["quarantine", "reprocess", &id]);
}

/// Reprocessed before its cause is fixed, the mail goes back to the
/// quarantine under a new id, which the command names.
#[test]
fn a_mail_quarantined_again_is_named_by_its_new_id() {
    let (env, _raw, id) = quarantined_stranger();
    let out = env.ok(&["quarantine", "reprocess", &id]);
    let open = env.list(&["quarantine", "list", "--json"]);
    assert_eq!(open.len(), 1, "{open:?}");
    let new = open[0]["id"].to_string();
    assert_ne!(new, id);
    assert_eq!(
        out.trim(),
        format!("quarantined mail {id}: quarantined, again as {new}")
    );
}

/// Two operators releasing the same mail at the same moment: one of them
/// opens the ticket, the other is told it was already reprocessed (the
/// release is marked in the batch's own transaction).
#[test]
fn two_reprocesses_at_once_open_one_ticket() {
    let (env, _raw, id) = quarantined_stranger();
    env.ok(&["contacts", "add", "jean.bernard@acme.fr", "--account", "OCN-1001"]);
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| env.run(&["quarantine", "reprocess", &id])))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(2)),
        "{codes:?}: {outs:?}"
    );
    assert_eq!(env.list(&["tickets", "list", "--json"]).len(), 1);
    let acknowledgements = env
        .list(&["outbox", "list", "--json"])
        .into_iter()
        .filter(|r| r["event"] == "acknowledgement")
        .count();
    assert_eq!(acknowledgements, 1);
}

/// Bytes that are certainly not mail (a fixed pseudo-random sequence).
fn garbage() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn non_mail_is_quarantined_and_the_rest_goes_on() {
    let env = Env::new();
    env.import(DIRECTORY);
    let junk = garbage();
    env.write("in/01-garbage.eml", &junk);
    env.write("in/02-request.eml", request());
    let summary = env.replay(&["in"]);
    assert_eq!(summary["processed"], 2);
    assert_eq!(summary["quarantined"], 1);
    assert_eq!(summary["new_tickets"], 1);

    let rows = env.list(&["quarantine", "list", "--json"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["reason"], "unparseable");
    let shown = env.run(&["quarantine", "show", &rows[0]["id"].to_string(), "--raw"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(shown.stdout, junk);

    let tickets = env.list(&["tickets", "list", "--json"]);
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["requester"], "marie.dupont@acme.fr");
    env.fail2(&["quarantine", "show", "999"]);
}

// -------------------------------------------------------------------- messages

#[test]
fn messages_list_has_documented_fields() {
    let env = replayed_env();
    env.write(
        "in/04-spam.eml",
        mail(
            "Win Big <promo@spam.example>",
            "spam-1@spam.example",
            "Mon, 2 Mar 2026 11:00:00 +0100",
            "You won",
            &[],
            "Click.",
        ),
    );
    env.replay(&["in"]);
    let rows = env.list(&["messages", "list", "--json"]);
    assert_fields(
        &rows,
        &[
            "id",
            "message_id",
            "source",
            "from",
            "subject",
            "outcome",
            "ticket",
            "class",
        ],
    );
    assert_eq!(rows.len(), 4);
    let got: Vec<(Value, Value, Value)> = rows
        .iter()
        .map(|r| (r["message_id"].clone(), r["outcome"].clone(), r["ticket"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!(REQUEST_ID), json!("new_ticket"), json!(1)),
            (json!(REPLY_ID), json!("update"), json!(1)),
            (json!(STRANGER_ID), json!("new_ticket"), json!(2)),
            (json!("spam-1@spam.example"), json!("ignored"), Value::Null),
        ]
    );
    assert_eq!(rows[0]["from"], "marie.dupont@acme.fr");
    assert_eq!(rows[1]["subject"], "RE: Ethernet LON/ETH/000123 down since 08:00");
    assert!(rows.iter().all(|r| r["class"] == "normal"), "{rows:#?}");
    assert!(
        rows[2]["source"].as_str().unwrap().ends_with("03-stranger.eml"),
        "{}",
        rows[2]
    );
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "processing order: {ids:?}");
}

// ---------------------------------------------------------------------- errors

#[test]
fn errors_have_exit_code_two_and_one_sentence() {
    let env = Env::new();
    let err = env.fail2(&["tickets", "show", "999"]);
    assert!(err.contains("ticket 999 not found"), "{err}");
    let err = env.fail2(&["tickets", "close", "999"]);
    assert!(err.contains("ticket 999 not found"), "{err}");
    env.fail2(&["frobnicate"]);
    env.fail2(&["tickets", "frobnicate"]);
    let err = env.fail2(&["contacts", "show", "nobody@acme.fr"]);
    assert!(err.contains("contact nobody@acme.fr not found"), "{err}");
    let err = env.fail2(&["contacts", "ignore", "nobody@acme.fr"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn a_file_over_the_size_limit_is_quarantined_with_its_headers() {
    let limit = reply().len().max(request().len()) + 100;
    let env = Env::with_config(&format!("\n[intake]\nmax_message_bytes = {limit}\n"));
    env.import(DIRECTORY);
    let mut big = request();
    big.extend(std::iter::repeat_n(b'x', limit));
    big.extend(b"\r\n");
    env.write("in/01-big.eml", &big);
    env.write("in/02-reply.eml", reply());
    let summary = env.replay(&["in"]);
    assert_eq!(summary["quarantined"], json!(1));
    let rows = env.list(&["quarantine", "list", "--json"]);
    assert_eq!(rows[0]["reason"], "too_large");
    let id = rows[0]["id"].to_string();
    let raw = env.run(&["quarantine", "show", &id, "--raw"]).stdout;
    assert!(
        raw.starts_with(b"From:") || raw.windows(8).any(|w| w == b"Subject:"),
        "headers kept"
    );
    assert!(raw.len() < request().len(), "only the headers: {} bytes", raw.len());
    // Reprocessing it would open a ticket from the headers alone, and the
    // rest of the mail could never come in: refused, saying what to do.
    let err = env.fail2(&["quarantine", "reprocess", &id]);
    assert!(err.contains("too_large") && err.contains("--eml"), "{err}");
    assert_eq!(env.list(&["quarantine", "list", "--json"]).len(), 1);
    assert_eq!(env.list(&["tickets", "list", "--json"]).len(), 1, "the reply's");
    // Another mail is not taken for it.
    let err = env.fail2(&["quarantine", "reprocess", &id, "--eml", &env.path("in/02-reply.eml")]);
    assert!(err.contains("another mail"), "{err}");
    // The whole mail, given by the operator, is processed whole in its
    // place: one row for it, its body on the ticket, the entry released.
    let out = env.ok(&["quarantine", "reprocess", &id, "--eml", &env.path("in/01-big.eml")]);
    assert!(out.contains("update") || out.contains("new_ticket"), "{out}");
    assert!(env.list(&["quarantine", "list", "--json"]).is_empty());
    let messages = env.list(&["messages", "list", "--json"]);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let raw = env.run(&["quarantine", "show", &id, "--raw"]).stdout;
    assert_eq!(raw, big, "the whole mail is kept now");
    let ticket = messages
        .iter()
        .find(|m| m["outcome"] != "quarantined" && m["subject"] == "Ethernet LON/ETH/000123 down since 08:00")
        .map(|m| m["ticket"].to_string())
        .unwrap_or_else(|| panic!("{messages:#?}"));
    let shown = env.ok(&["tickets", "show", &ticket, "--json"]);
    assert!(shown.contains("xxxxxxxxxx"), "the body is on the ticket: {shown}");
}

/// A web form that sends every mail with one constant Message-ID: each
/// sender's mail is a mail of its own (kept under its bytes' hash), and so
/// is the same sender's next mail, written at another time; the same mail
/// again (same sender, same `Date:`) is a duplicate.
#[test]
fn a_message_id_reused_for_another_mail_is_another_mail() {
    let env = Env::new();
    env.import(DIRECTORY);
    let form = |from: &str, date: &str, body: &str| mail(from, "form@webform.test", date, "Contact form", &[], body);
    env.write(
        "in/1.eml",
        form(
            "Alice <alice@example.org>",
            "Mon, 2 Mar 2026 10:15:00 +0100",
            "Alice's request",
        ),
    );
    env.write(
        "in/2.eml",
        form(
            "Bob <bob@example.org>",
            "Mon, 2 Mar 2026 10:16:00 +0100",
            "Bob's request",
        ),
    );
    // Alice's mail delivered a second time (through another mailbox).
    let mut again = b"Received: from mx2.provider.test by imap2.provider.test\r\n".to_vec();
    again.extend(form(
        "Alice <alice@example.org>",
        "Mon, 2 Mar 2026 10:15:00 +0100",
        "Alice's request",
    ));
    env.write("in/3.eml", again);
    // Alice fills the form in again, later.
    env.write(
        "in/4.eml",
        form(
            "Alice <alice@example.org>",
            "Mon, 2 Mar 2026 11:40:00 +0100",
            "Alice's second request",
        ),
    );
    let summary = env.replay(&["in"]);
    assert_eq!(
        (summary["new_tickets"].clone(), summary["duplicates"].clone()),
        (json!(3), json!(1)),
        "{summary}"
    );
    let tickets = env.list(&["tickets", "list", "--json"]);
    let mut requesters: Vec<&str> = tickets.iter().filter_map(|t| t["requester"].as_str()).collect();
    requesters.sort_unstable();
    assert_eq!(
        requesters,
        ["alice@example.org", "alice@example.org", "bob@example.org"]
    );
    let bodies = tickets
        .iter()
        .map(|t| env.ok(&["tickets", "show", &t["number"].to_string(), "--json"]))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(bodies.contains("Alice's second request"), "{bodies}");
    // Replayed again, all four are duplicates: Bob's and Alice's second
    // under their hashes.
    let summary = env.replay(&["in"]);
    assert_eq!(
        (summary["duplicates"].clone(), summary["new_tickets"].clone()),
        (json!(4), json!(0)),
        "{summary}"
    );
    assert_eq!(env.list(&["tickets", "list", "--json"]).len(), 3);
}
