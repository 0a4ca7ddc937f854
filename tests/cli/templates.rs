//! Template overrides as the operator meets them: a template that cannot
//! render, or a file that is no template, fails `check-config` by name;
//! a template that fails only on some mail quarantines that mail with its
//! sender and subject shown.

use super::*;

/// An Env whose config points `templates.dir` at `dir/templates`, holding
/// `files`.
fn with_templates(files: &[(&str, &str)]) -> Env {
    let env = Env::new();
    for (name, text) in files {
        env.write(&format!("templates/{name}"), text);
    }
    let dir = env.path("templates");
    let config = std::fs::read_to_string(env.path("mailroom.toml")).unwrap();
    env.write("mailroom.toml", format!("{config}\n[templates]\ndir = {dir:?}\n"));
    env
}

#[test]
fn a_template_that_cannot_render_fails_check_config_by_name() {
    // Parses, but names a variable no notice has.
    let env = with_templates(&[(
        "new_ticket.fr.txt",
        "Subject: {{ ticket.tag }} {{ ticket.subjet }}\n\nBonjour {{ recipient.first_name }},\n",
    )]);
    let err = env.fail2(&["check-config"]);
    assert!(
        err.contains("new_ticket.fr") && err.contains("cannot be rendered"),
        "{err}"
    );
    // Commands that render refuse as well, with the same exit code.
    let err = env.fail2(&["replay", "--json", env.path("templates").as_str()]);
    assert!(err.contains("new_ticket.fr"), "{err}");
}

/// A NUL in a template went into every notification: PostgreSQL refused
/// the outbox row and every notifying mail ended in quarantine there.
#[test]
fn a_template_holding_a_control_character_is_refused_naming_its_line() {
    let env = with_templates(&[(
        "new_ticket.fr.txt",
        "Subject: {{ ticket.tag }} {{ ticket.subject }}\n\nBonjour\0 {{ recipient.first_name }},\n",
    )]);
    let err = env.fail2(&["check-config"]);
    assert!(
        err.contains("new_ticket.fr") && err.contains("line 3 holds the control character U+0000"),
        "{err}"
    );
}

#[test]
fn a_subject_without_the_ticket_tag_is_refused() {
    let env = with_templates(&[(
        "ticket_updated.it.txt",
        "Subject: Aggiornamento: {{ ticket.subject }}\n\nCiao {{ recipient.first_name }},\n",
    )]);
    let err = env.fail2(&["check-config"]);
    assert!(
        err.contains("ticket_updated.it") && err.contains("must carry the ticket's tag"),
        "{err}"
    );
}

#[test]
fn a_refusal_template_naming_the_ticket_is_refused_a_refusal_has_none() {
    let env = with_templates(&[(
        "refusal.en.txt",
        "Subject: Re: {{ message.subject }}\n\nTicket {{ ticket.tag }}\n",
    )]);
    let err = env.fail2(&["check-config"]);
    assert!(err.contains("refusal.en"), "{err}");
}

#[test]
fn a_misnamed_override_is_refused_not_ignored() {
    let env = with_templates(&[(
        "new-ticket.fr.txt",
        "Subject: {{ ticket.tag }} {{ ticket.subject }}\n\nBonjour\n",
    )]);
    let err = env.fail2(&["check-config"]);
    assert!(
        err.contains("new-ticket.fr.txt") && err.contains("<event>.<language>.txt") && err.contains("new_ticket"),
        "{err}"
    );
    // Other files (notes, backups) beside the templates are not templates.
    let env = with_templates(&[
        ("README.md", "my notes"),
        ("new_ticket.fr.txt.orig", "old"),
        (
            "new_ticket.fr.txt",
            "Subject: {{ ticket.tag }} {{ ticket.subject }}\n\nBonjour\n",
        ),
    ]);
    env.ok(&["check-config"]);
}

/// A template that fails only on some mails (here, long ones) passes the
/// load-time rehearsal; such a mail is quarantined, named by sender and
/// subject, and the others are ticketed as usual.
#[test]
fn a_mail_its_template_fails_on_is_quarantined_with_sender_and_subject() {
    let env = with_templates(&[(
        "acknowledgement.en.txt",
        "Subject: {{ ticket.tag }} {{ ticket.subject }}\n\n{% if message.text | length > 200 %}{{ message.nothing }}{% endif %}Thanks.\n",
    )]);
    env.ok(&["check-config"]);
    let long = mail(
        "Jean Bernard <jean@example.org>",
        "long@example.org",
        "Mon, 2 Mar 2026 10:15:00 +0100",
        "A long story",
        &[],
        &"All of it went wrong. ".repeat(20),
    );
    env.write("in/1.eml", &long);
    env.write(
        "in/2.eml",
        mail(
            "Ana Horvat <ana@example.org>",
            "short@example.org",
            "Mon, 2 Mar 2026 10:16:00 +0100",
            "Short",
            &[],
            "Down.",
        ),
    );
    let summary = env.replay(&["in"]);
    assert_eq!(
        (summary["quarantined"].clone(), summary["new_tickets"].clone()),
        (json!(1), json!(1))
    );
    let rows = env.list(&["quarantine", "list", "--json"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["reason"], "processing_error");
    assert_eq!(rows[0]["from"], "jean@example.org");
    assert_eq!(rows[0]["subject"], "A long story");

    // The same mail again, through a second mailbox (one more Received
    // line): a duplicate of the one in quarantine, not a ticket beside it.
    let mut again =
        b"Received: from mx2.provider.test by imap2.provider.test; Mon, 2 Mar 2026 10:15:09 +0100\r\n".to_vec();
    again.extend(&long);
    env.write("again/1.eml", again);
    let summary = env.replay(&["again"]);
    assert_eq!(
        (summary["duplicates"].clone(), summary["new_tickets"].clone()),
        (json!(1), json!(0)),
        "{summary}"
    );

    // Reprocessed before the template is fixed, it still fails: refused,
    // and left in the quarantine as it was, not released as a duplicate.
    let id = rows[0]["id"].to_string();
    let err = env.fail2(&["quarantine", "reprocess", &id]);
    assert!(err.contains("still cannot be processed"), "{err}");
    let open = env.list(&["quarantine", "list", "--json"]);
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["id"].to_string(), id);
    assert_eq!(env.list(&["tickets", "list", "--json"]).len(), 1);
}
