//! One address, one domain, one rule, however it is spelled: Unicode or
//! ASCII (IDNA) domains, upper case, a trailing dot.

use super::*;

/// An account whose domain an admin typed in Unicode, with a trailing dot
/// on another.
const BUECHER: &str = r#"
[[account]]
number = "OCN-1"
name = "Bücher"
domains = ["Bücher.DE", "acme.fr."]
"#;

/// m1.eml: Hans writes from bücher.de, named in ASCII as mail names it.
fn hans_writes(env: &Env) {
    env.write(
        "m1.eml",
        mail(
            "Hans <hans@xn--bcher-kva.de>",
            "m1@x.test",
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "Hallo",
            &[],
            "Hallo",
        ),
    );
}

#[test]
fn an_idn_domain_matches_mail_naming_it_in_ascii() {
    let env = Env::new();
    env.import(BUECHER);
    let account = find(&env.list(&["accounts", "list", "--json"]), "number", "OCN-1").clone();
    assert_eq!(account["domains"], json!(["acme.fr", "xn--bcher-kva.de"]));
    hans_writes(&env);
    env.write(
        "m2.eml",
        mail(
            "Anne <anne@acme.fr>",
            "m2@x.test",
            "Mon, 2 Mar 2026 08:01:00 +0100",
            "Bonjour",
            &[],
            "Bonjour",
        ),
    );
    env.replay(&["m1.eml", "m2.eml"]);
    let contacts = env.list(&["contacts", "list", "--json"]);
    assert_eq!(find(&contacts, "email", "hans@xn--bcher-kva.de")["account"], "OCN-1");
    assert_eq!(find(&contacts, "email", "anne@acme.fr")["account"], "OCN-1");
    // The Unicode spelling is the same contact, not a second one.
    let err = env.fail2(&["contacts", "add", "hans@bücher.de", "--account", "OCN-1"]);
    assert!(err.contains("already exists"), "{err}");
    let hans = env.json(&["contacts", "show", "HANS@Bücher.de", "--json"]);
    assert_eq!(hans["email"], "hans@xn--bcher-kva.de");
}

#[test]
fn an_ignore_rule_is_one_rule_however_spelled() {
    let env = Env::new();
    for spelling in ["*@Spam.test", "*@spam.test", "*@spam.test."] {
        env.ok(&["ignore", "add", spelling]);
    }
    assert_eq!(env.list(&["ignore", "list", "--json"]).len(), 1);
    env.ok(&["ignore", "add", "*@bücher.de"]);
    hans_writes(&env);
    assert_eq!(env.replay(&["m1.eml"])["ignored"], 1);
    // Removed by another spelling, the rule is gone: the sender's mail
    // opens a ticket again.
    env.ok(&["ignore", "remove", "*@SPAM.test."]);
    env.write(
        "m2.eml",
        mail(
            "X <x@spam.test>",
            "m2@x.test",
            "Mon, 2 Mar 2026 08:01:00 +0100",
            "Order",
            &[],
            "Please call me",
        ),
    );
    assert_eq!(env.replay(&["m2.eml"])["new_tickets"], 1);
}

/// Rows as a release before one-form domains stored them: an account
/// domain and addresses in Unicode, one address in both spellings.
const BEFORE: &[&str] = &[
    "INSERT INTO account_domains (domain, account_id) SELECT 'bücher.de', id FROM accounts WHERE number = 'OCN-1'",
    "INSERT INTO contacts (email, first_name, last_name, account_id, created_by, created_at)
     SELECT 'hans@bücher.de', 'Hans', 'Weber', id, 'directory', 1 FROM accounts WHERE number = 'OCN-1'",
    "INSERT INTO contacts (email, first_name, last_name, created_by, created_at)
     VALUES ('eva@bücher.de', 'Eva', 'Roth', 'directory', 1)",
    "INSERT INTO contacts (email, first_name, last_name, created_by, created_at)
     VALUES ('eva@xn--bcher-kva.de', 'Eva', 'Roth', 'auto', 2)",
    // Two spellings of one address, composed and decomposed: one becomes
    // the ASCII form, the other is left, and the rest is still rewritten.
    "INSERT INTO contacts (email, first_name, last_name, created_by, created_at)
     VALUES ('max@b\u{fc}cher.de', 'Max', 'Roth', 'directory', 4)",
    "INSERT INTO contacts (email, first_name, last_name, created_by, created_at)
     VALUES ('max@bu\u{308}cher.de', 'Max', 'Roth', 'auto', 5)",
    // A Unicode local part has no other form: left as it is, silently.
    "INSERT INTO contacts (email, first_name, last_name, created_by, created_at)
     VALUES ('jürgen@acme.fr', 'Jürgen', 'Roth', 'directory', 3)",
];

#[tokio::test]
async fn a_store_from_before_one_form_domains_is_brought_to_ascii_when_opened() {
    let env = Env::new();
    env.import("[[account]]\nnumber = \"OCN-1\"\nname = \"Bücher\"\ndomains = [\"acme.fr\"]\n");
    for statement in BEFORE {
        env.sql(statement).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    // Any command opens the store; the rewrite happens then, once.
    let out = env.run(&["accounts", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    // Eva has both spellings: nothing is merged, and the log says so.
    assert!(
        log.contains("eva@bücher.de") && log.contains("eva@xn--bcher-kva.de"),
        "{log}"
    );
    let accounts: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        find(&accounts, "number", "OCN-1")["domains"],
        json!(["acme.fr", "xn--bcher-kva.de"])
    );
    let contacts = env.list(&["contacts", "list", "--json"]);
    let emails: Vec<&str> = contacts.iter().filter_map(|c| c["email"].as_str()).collect();
    assert!(emails.contains(&"hans@xn--bcher-kva.de"), "{emails:?}");
    assert!(!emails.contains(&"hans@bücher.de"), "{emails:?}");
    assert!(
        emails.contains(&"eva@bücher.de") && emails.contains(&"eva@xn--bcher-kva.de"),
        "{emails:?}"
    );
    assert!(emails.contains(&"jürgen@acme.fr"), "{emails:?}");
    assert!(
        emails.contains(&"max@xn--bcher-kva.de") && emails.contains(&"max@bu\u{308}cher.de"),
        "{emails:?}"
    );
    // Named as Rust writes a string out, so the difference shows.
    assert!(log.contains(r"max@bu\u{308}cher.de"), "{log}");
    assert!(!log.contains("jürgen"), "{log}");
    // Mail from Hans, named in ASCII, is his: no second contact.
    hans_writes(&env);
    let summary = env.replay(&["m1.eml"]);
    assert_eq!(summary["contacts_created"], 0, "{summary}");
    let ticket = env.json(&["tickets", "show", "1", "--json"]);
    assert_eq!(ticket["requester"], "hans@xn--bcher-kva.de", "{ticket}");
    assert_eq!(ticket["account"], "OCN-1", "{ticket}");
    // The address is immutable again once rewritten.
    let refused = env
        .sql("UPDATE contacts SET email = 'hans@elsewhere.test' WHERE email = 'hans@xn--bcher-kva.de'")
        .await
        .expect_err("the trigger is back");
    assert!(refused.contains("immutable"), "{refused}");
}
