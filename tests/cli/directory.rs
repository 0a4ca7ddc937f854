//! Directory import/export and contacts from the command line.

use super::*;

// ------------------------------------------------------------------- directory

#[test]
fn directory_import_shows_in_every_list() {
    let env = Env::new();
    let path = env.write("directory.toml", DIRECTORY);
    let out = env.ok(&["directory", "import", path.to_str().unwrap()]);
    assert!(
        out.contains("2 accounts") && out.contains("4 contacts") && out.contains("3 subscriptions"),
        "{out}"
    );

    let accounts = env.list(&["accounts", "list", "--json"]);
    assert_eq!(accounts.len(), 2);
    let acme = find(&accounts, "number", "OCN-1001");
    assert_eq!(acme["name"], "Acme SA");
    assert_eq!(acme["domains"], json!(["acme.fr"]));
    assert_eq!(acme["language"], "fr");
    assert_eq!(acme["intake"], "open");
    assert_eq!(find(&accounts, "number", "OCN-2002")["intake"], "approval");

    let contacts = env.list(&["contacts", "list", "--json"]);
    assert_fields(
        &contacts,
        &[
            "email",
            "first_name",
            "last_name",
            "account",
            "language",
            "primary",
            "group",
            "ignore",
            "created_by",
        ],
    );
    assert_eq!(contacts.len(), 4);
    let marie = find(&contacts, "email", "marie.dupont@acme.fr");
    assert_eq!(marie["first_name"], "Marie");
    assert_eq!(marie["last_name"], "Dupont");
    assert_eq!(marie["account"], "OCN-1001");
    assert_eq!(marie["language"], "fr");
    assert_eq!(marie["primary"], true);
    assert_eq!(marie["group"], false);
    assert_eq!(marie["ignore"], false);
    assert_eq!(marie["created_by"], "directory");
    let noc = find(&contacts, "email", "noc@acme.fr");
    assert_eq!(
        (noc["group"].clone(), noc["primary"].clone()),
        (json!(true), json!(false))
    );
    let free = find(&contacts, "email", "freelancer@example.net");
    assert_eq!(free["account"], Value::Null);
    assert_eq!(free["language"], "it");
    assert!(contacts.iter().all(|c| c["created_by"] == "directory"));

    let services = env.list(&["services", "list", "--json"]);
    assert_eq!(services.len(), 2);
    let eth = find(&services, "id", "LON/ETH/000123");
    assert_eq!(
        (eth["account"].clone(), eth["name"].clone()),
        (json!("OCN-1001"), json!("Ethernet Paris-London"))
    );

    let subs = env.list(&["subscriptions", "list", "--json"]);
    assert_eq!(subs.len(), 3);
    let esc = subs
        .iter()
        .find(|s| s["group"] == "escalation")
        .expect("escalation row");
    assert_eq!(
        (esc["contact"].clone(), esc["account"].clone(), esc["level"].clone()),
        (json!("noc@acme.fr"), json!("OCN-1001"), json!(2))
    );
    let reactive = find(&subs, "group", "reactive_service_outage");
    assert_eq!(
        (reactive["contact"].clone(), reactive["service"].clone()),
        (json!("noc@acme.fr"), json!("LON/ETH/000123"))
    );
    assert_eq!(find(&subs, "group", "accounts_payable")["billing"], "BCN-77");
}

#[test]
fn directory_import_is_all_or_nothing() {
    let env = Env::new();
    env.import(DIRECTORY);
    let before = env.list(&["contacts", "list", "--json"]);
    // Rows #1 and #2 are fine (a new contact, a renamed one); #3 is not.
    let bad = r#"
[[contact]]
email = "paul.martin@acme.fr"
first_name = "Paul"
account = "OCN-1001"

[[contact]]
email = "marie.dupont@acme.fr"
first_name = "Maria"
last_name = "Dupont"
account = "OCN-1001"

[[contact]]
email = "ghost@nowhere.test"
first_name = "Ghost"
account = "OCN-9999"
"#;
    let path = env.write("bad.toml", bad);
    let err = env.fail2(&["directory", "import", path.to_str().unwrap()]);
    assert!(err.contains("contact #3"), "{err}");
    assert!(err.contains("OCN-9999"), "{err}");
    assert_eq!(
        env.list(&["contacts", "list", "--json"]),
        before,
        "nothing may be written"
    );
}

#[test]
fn directory_import_refuses_unknown_keys_and_bad_rows() {
    let env = Env::new();
    let path = env.write("typo.toml", "[[contact]]\nemail = \"a@acme.fr\"\nfirstname = \"A\"\n");
    let err = env.fail2(&["directory", "import", path.to_str().unwrap()]);
    assert!(err.contains("firstname"), "{err}");
    let path = env.write(
        "lang.toml",
        "[[contact]]\nemail = \"a@acme.fr\"\n\n[[contact]]\nemail = \"b@acme.fr\"\nlanguage = \"klingon\"\n",
    );
    let err = env.fail2(&["directory", "import", path.to_str().unwrap()]);
    assert!(err.contains("contact #2") && err.contains("klingon"), "{err}");
    assert!(env.list(&["contacts", "list", "--json"]).is_empty());
}

#[test]
fn subscription_json_rows_have_every_documented_key() {
    let env = Env::new();
    env.import(DIRECTORY);
    let subs = env.list(&["subscriptions", "list", "--json"]);
    assert_fields(&subs, &["contact", "group", "account", "service", "billing", "level"]);
}

#[test]
fn subscription_to_another_accounts_service_is_refused() {
    let env = Env::new();
    env.import(DIRECTORY);
    let before = env.list(&["subscriptions", "list", "--json"]);
    let bad = r#"
[[subscription]]
contact = "marie.dupont@acme.fr"
group = "key_contact"
account = "OCN-1001"

[[subscription]]
contact = "marie.dupont@acme.fr"
group = "planned_works"
service = "FRA/MPLS/000777"
"#;
    let path = env.write("bad.toml", bad);
    let err = env.fail2(&["directory", "import", path.to_str().unwrap()]);
    assert!(err.contains("subscription #2"), "{err}");
    assert!(err.contains("FRA/MPLS/000777"), "{err}");
    assert_eq!(env.list(&["subscriptions", "list", "--json"]), before);
    // The single-row command obeys the same rule.
    let err = env.fail2(&[
        "subscriptions",
        "add",
        "--contact",
        "marie.dupont@acme.fr",
        "--group",
        "planned_works",
        "--service",
        "FRA/MPLS/000777",
    ]);
    assert!(err.contains("FRA/MPLS/000777"), "{err}");
    assert_eq!(env.list(&["subscriptions", "list", "--json"]), before);
}

#[test]
fn directory_export_round_trips() {
    let first = Env::new();
    first.import(DIRECTORY);
    let export = first.ok(&["directory", "export"]);
    for needle in [
        "OCN-1001",
        "BCN-77",
        "LON/ETH/000123",
        "freelancer@example.net",
        "*@spam.example",
        "level = 2",
    ] {
        assert!(export.contains(needle), "{needle} missing from export:\n{export}");
    }
    let second = Env::new();
    second.import(&export);
    assert_eq!(second.ok(&["directory", "export"]), export);
    assert_eq!(second.list(&["contacts", "list", "--json"]).len(), 4);
}

// -------------------------------------------------------------------- contacts

#[test]
fn contact_email_cannot_change_but_fields_can() {
    let env = Env::new();
    env.import(DIRECTORY);
    let err = env.fail2(&["contacts", "update", "marie.dupont@acme.fr", "--email", "marie@acme.fr"]);
    assert!(err.contains("cannot be changed"), "{err}");
    assert!(err.contains("marie.dupont@acme.fr"), "{err}");
    assert!(env.run(&["contacts", "show", "marie@acme.fr", "--json"]).status.code() == Some(2));

    env.ok(&[
        "contacts",
        "update",
        "marie.dupont@acme.fr",
        "--first-name",
        "Marie-Claire",
        "--language",
        "en",
    ]);
    let marie = env.json(&["contacts", "show", "marie.dupont@acme.fr", "--json"]);
    assert_eq!(marie["email"], "marie.dupont@acme.fr");
    assert_eq!(marie["first_name"], "Marie-Claire");
    assert_eq!(marie["language"], "en");
    // Fields not named keep their values.
    assert_eq!(marie["last_name"], "Dupont");
    assert_eq!(marie["account"], "OCN-1001");
    assert_eq!(marie["primary"], true);
    assert_eq!(
        marie["created_by"], "directory",
        "an edit does not change who created the contact"
    );
}

#[test]
fn contacts_add_and_subscriptions() {
    let env = Env::new();
    env.import(DIRECTORY);
    env.ok(&[
        "contacts",
        "add",
        "paul.martin@acme.fr",
        "--first-name",
        "Paul",
        "--last-name",
        "Martin",
        "--account",
        "OCN-1001",
    ]);
    let paul = env.json(&["contacts", "show", "paul.martin@acme.fr", "--json"]);
    assert_eq!(
        (paul["first_name"].clone(), paul["last_name"].clone()),
        (json!("Paul"), json!("Martin"))
    );
    assert_eq!(paul["account"], "OCN-1001");
    assert_eq!(paul["created_by"], "cli");
    assert_eq!(env.list(&["contacts", "list", "--json"]).len(), 5);
    // Adding twice is refused; an unknown account is refused.
    env.fail2(&["contacts", "add", "paul.martin@acme.fr"]);
    let err = env.fail2(&["contacts", "add", "x@acme.fr", "--account", "OCN-4040"]);
    assert!(err.contains("OCN-4040"), "{err}");

    let subs = env.list(&["contacts", "subscriptions", "noc@acme.fr", "--json"]);
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs.iter().all(|s| s["contact"] == "noc@acme.fr"));
    assert_eq!(find(&subs, "group", "escalation")["level"], 2);
    assert_eq!(
        find(&subs, "group", "reactive_service_outage")["service"],
        "LON/ETH/000123"
    );
    assert!(
        env.list(&["contacts", "subscriptions", "paul.martin@acme.fr", "--json"])
            .is_empty()
    );
    env.fail2(&["contacts", "subscriptions", "nobody@acme.fr", "--json"]);
}

#[test]
fn ignored_contacts_get_no_mail_and_their_mail_is_ignored() {
    let env = Env::new();
    env.import(DIRECTORY);
    // An ignored subscriber hears nothing about a new ticket.
    let out = env.ok(&["contacts", "ignore", "NOC@acme.fr"]);
    assert!(out.contains("ignored"), "{out}");
    assert_eq!(env.json(&["contacts", "show", "noc@acme.fr", "--json"])["ignore"], true);
    env.write("in/01.eml", request());
    assert_eq!(env.replay(&["in/01.eml"])["new_tickets"], 1);
    let outbox = env.list(&["outbox", "list", "--json"]);
    assert_eq!(outbox.len(), 1, "{outbox:#?}");
    assert_eq!(
        (outbox[0]["to"].clone(), outbox[0]["event"].clone()),
        (json!("marie.dupont@acme.fr"), json!("acknowledgement"))
    );

    // Mail from an ignored contact: no ticket update, no notification.
    env.ok(&["contacts", "ignore", "marie.dupont@acme.fr"]);
    env.write("in/02.eml", reply());
    let summary = env.replay(&["in/02.eml"]);
    assert_eq!(
        (
            summary["ignored"].clone(),
            summary["updates"].clone(),
            summary["notifications"].clone()
        ),
        (json!(1), json!(0), json!(0))
    );
    let messages = env.list(&["messages", "list", "--json"]);
    let last = messages.last().expect("row");
    assert_eq!(
        (
            last["message_id"].clone(),
            last["outcome"].clone(),
            last["ticket"].clone()
        ),
        (json!(REPLY_ID), json!("ignored"), Value::Null)
    );
    assert_eq!(env.list(&["tickets", "list", "--json"])[0]["messages"], 1);
    assert_eq!(env.list(&["outbox", "list", "--json"]).len(), 1);

    env.ok(&["contacts", "ignore", "marie.dupont@acme.fr", "--off"]);
    assert_eq!(
        env.json(&["contacts", "show", "marie.dupont@acme.fr", "--json"])["ignore"],
        false
    );
}

#[test]
fn directory_ignore_rule_ignores_mail() {
    let env = Env::new();
    env.import(DIRECTORY);
    env.write(
        "in/01.eml",
        mail(
            "Win Big <promo@spam.example>",
            "spam-1@spam.example",
            "Mon, 2 Mar 2026 11:00:00 +0100",
            "You won",
            &[],
            "Click.",
        ),
    );
    let summary = env.replay(&["in"]);
    assert_eq!(
        (summary["ignored"].clone(), summary["contacts_created"].clone()),
        (json!(1), json!(0))
    );
    assert!(env.run(&["contacts", "show", "promo@spam.example"]).status.code() == Some(2));
}

/// The README's directory example is what operators copy first: it must
/// import as it stands, and its export must import back to the same file.
#[test]
fn the_readme_directory_example_imports_and_round_trips() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Directory file")
        .nth(1)
        .expect("the README has a Directory file section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block in the Directory file section");
    let env = Env::new();
    let path = env.write("readme-directory.toml", example);
    let out = env.ok(&["directory", "import", path.to_str().unwrap()]);
    assert!(out.contains("1 accounts") && out.contains("2 subscriptions"), "{out}");
    let exported = env.ok(&["directory", "export"]);
    let again = Env::new();
    let path = again.write("exported.toml", &exported);
    again.ok(&["directory", "import", path.to_str().unwrap()]);
    assert_eq!(again.ok(&["directory", "export"]), exported);
}

// ----------------------------------------------------------------------- moves

/// A service, a contact or a billing account moved to another customer
/// takes none of the old customer's subscriptions along: each one that no
/// longer fits is removed and named, and the export still imports.
#[test]
fn a_move_to_another_account_removes_the_subscriptions_that_no_longer_fit() {
    let env = Env::new();
    env.import(DIRECTORY);

    let out = env.ok(&["services", "add", "LON/ETH/000123", "--account", "OCN-2002"]);
    assert!(
        out.contains("removed 1 subscription")
            && out.contains(
                "noc@acme.fr reactive_service_outage on service LON/ETH/000123 (the contact is in account OCN-1001)"
            ),
        "{out}"
    );
    let noc = env.list(&["contacts", "subscriptions", "noc@acme.fr", "--json"]);
    assert_eq!(noc.len(), 1, "{noc:?}");
    assert_eq!(noc[0]["group"], "escalation");
    let service = find(&env.list(&["services", "list", "--json"]), "id", "LON/ETH/000123").clone();
    assert_eq!(
        (service["account"].as_str(), service["name"].as_str()),
        (Some("OCN-2002"), Some("Ethernet Paris-London")),
        "the move keeps the service's name"
    );

    let out = env.ok(&["contacts", "update", "noc@acme.fr", "--account", "OCN-2002"]);
    assert!(out.contains("noc@acme.fr escalation on account OCN-1001"), "{out}");
    assert!(
        env.list(&["contacts", "subscriptions", "noc@acme.fr", "--json"])
            .is_empty()
    );

    let moved = "[[billing_account]]\nnumber = \"BCN-77\"\naccount = \"OCN-2002\"\n";
    let path = env.write("move.toml", moved);
    let out = env.ok(&["directory", "import", path.to_str().unwrap()]);
    assert!(
        out.contains("marie.dupont@acme.fr accounts_payable on billing account BCN-77"),
        "{out}"
    );
    assert!(env.list(&["subscriptions", "list", "--json"]).is_empty());

    let export = env.ok(&["directory", "export"]);
    let again = Env::new();
    again.import(&export);
    assert_eq!(again.ok(&["directory", "export"]), export);
}

/// `accounts add` and `services add` on an existing row change what they
/// name and keep the rest (a CRM-imported account lost its domains,
/// language, intake and health to a rename).
#[test]
fn accounts_and_services_add_keep_what_they_do_not_name() {
    let env = Env::new();
    env.import(
        r#"
[[account]]
number = "OCN-2002"
name = "Globex GmbH"
domains = ["globex.de", "globex.at"]
language = "de"
intake = "approval"
health = "at_risk"
tier = "premium"

[[service]]
id = "FRA/MPLS/000777"
account = "OCN-2002"
name = "MPLS Frankfurt"
a_end = "Frankfurt"
b_end = "Vienna"
"#,
    );
    env.ok(&["accounts", "add", "OCN-2002", "--name", "Globex AG"]);
    env.ok(&["services", "add", "FRA/MPLS/000777", "--name", "MPLS FRA-VIE"]);
    let export = env.ok(&["directory", "export"]);
    for kept in [
        "name = \"Globex AG\"",
        "domains = [\"globex.at\", \"globex.de\"]",
        "language = \"de\"",
        "intake = \"approval\"",
        "health = \"at_risk\"",
        "tier = \"premium\"",
        "name = \"MPLS FRA-VIE\"",
        "a_end = \"Frankfurt\"",
        "b_end = \"Vienna\"",
    ] {
        assert!(export.contains(kept), "{kept} missing:\n{export}");
    }
    // Named domains replace the account's, in canonical (lower) case.
    env.ok(&["accounts", "add", "OCN-2002", "--domain", "Globex.COM"]);
    let account = find(&env.list(&["accounts", "list", "--json"]), "number", "OCN-2002").clone();
    assert_eq!(account["domains"], json!(["globex.com"]));
    assert_eq!(account["intake"], "approval");
    // A new row needs what only it can give.
    let err = env.fail2(&["accounts", "add", "OCN-9"]);
    assert!(err.contains("OCN-9") && err.contains("--name"), "{err}");
    let err = env.fail2(&["services", "add", "NEW/1"]);
    assert!(err.contains("NEW/1") && err.contains("--account"), "{err}");
}

/// Two accounts of one file swap a domain whatever the order of their rows.
#[test]
fn a_domain_moves_between_accounts_of_one_file_in_any_row_order() {
    let env = Env::new();
    env.import(DIRECTORY);
    env.import(
        "[[account]]\nnumber = \"OCN-2002\"\nname = \"Globex GmbH\"\ndomains = [\"globex.de\", \"acme.fr\"]\n\n\
[[account]]\nnumber = \"OCN-1001\"\nname = \"Acme SA\"\ndomains = [\"acme.com\"]\n",
    );
    let accounts = env.list(&["accounts", "list", "--json"]);
    assert_eq!(
        find(&accounts, "number", "OCN-2002")["domains"],
        json!(["acme.fr", "globex.de"])
    );
    assert_eq!(find(&accounts, "number", "OCN-1001")["domains"], json!(["acme.com"]));
}

// -------------------------------------------------------------------- removals

/// Contacts, billing accounts and ignore rules can be removed one by one;
/// a contact that ticket history refers to is refused (ignore them
/// instead), and the config file's ignore rules are listed beside the
/// directory's but removed only there.
#[test]
fn contacts_billing_accounts_and_ignore_rules_can_be_removed() {
    let env = Env::with_config("\n[intake]\nignore = [\"*@noreply.example\"]\n");
    env.import(DIRECTORY);

    // noc@acme.fr has subscriptions and no history: it goes, with them,
    // and every other subscription stays.
    let before = env.list(&["subscriptions", "list", "--json"]);
    let others: Vec<_> = before
        .iter()
        .filter(|s| s["contact"] != "noc@acme.fr")
        .cloned()
        .collect();
    assert!(others.len() < before.len() && !others.is_empty(), "{before:?}");
    assert!(env.ok(&["contacts", "remove", "NOC@acme.fr"]).contains("removed"));
    env.fail2(&["contacts", "show", "noc@acme.fr"]);
    assert_eq!(env.list(&["subscriptions", "list", "--json"]), others);
    // marie.dupont@acme.fr requested a ticket: refused, nothing changed.
    env.write("in/1.eml", request());
    env.replay(&["in"]);
    let err = env.fail2(&["contacts", "remove", "marie.dupont@acme.fr"]);
    assert!(err.contains("history") && err.contains("contacts ignore"), "{err}");
    env.ok(&["contacts", "show", "marie.dupont@acme.fr"]);
    assert_eq!(
        env.run(&["contacts", "remove", "nobody@acme.fr"]).status.code(),
        Some(2)
    );

    // Billing accounts: listed, moved, removed with their subscriptions.
    let billing = env.list(&["billing", "list", "--json"]);
    assert_eq!(billing, vec![json!({"number": "BCN-77", "account": "OCN-1001"})]);
    env.ok(&["billing", "add", "BCN-88", "--account", "OCN-2002"]);
    env.ok(&["billing", "remove", "BCN-77"]);
    assert_eq!(
        env.list(&["billing", "list", "--json"]),
        vec![json!({"number": "BCN-88", "account": "OCN-2002"})]
    );
    assert!(env.list(&["subscriptions", "list", "--json"]).is_empty());
    assert_eq!(env.run(&["billing", "remove", "BCN-77"]).status.code(), Some(2));

    // Ignore rules from both places, each with its source.
    env.ok(&["ignore", "add", "*@spam2.example"]);
    let rules = env.list(&["ignore", "list", "--json"]);
    assert_eq!(
        rules,
        vec![
            json!({"pattern": "*@noreply.example", "source": "config"}),
            json!({"pattern": "*@spam.example", "source": "directory"}),
            json!({"pattern": "*@spam2.example", "source": "directory"}),
        ]
    );
    env.ok(&["ignore", "remove", "*@spam.example"]);
    let err = env.fail2(&["ignore", "remove", "*@noreply.example"]);
    assert!(err.contains("config file"), "{err}");
    let err = env.fail2(&["ignore", "add", "regex:("]);
    assert!(err.contains("regex"), "{err}");
    assert_eq!(env.list(&["ignore", "list", "--json"]).len(), 2);
}
