//! Who hears about what after the directory changes under existing
//! tickets and contacts: services and contacts moved between accounts,
//! contacts created from mail before their account was imported.

use super::*;

/// Two customers: Acme (with service S-1) and Beta.
const TWO_CUSTOMERS: &str = r#"
[[account]]
number = "OCN-1"
name = "Acme"
domains = ["acme.fr"]

[[account]]
number = "OCN-2"
name = "Beta"
domains = ["beta.fr"]

[[service]]
id = "S-1"
account = "OCN-1"

[[contact]]
email = "paul@acme.fr"
account = "OCN-1"

[[contact]]
email = "marie@acme.fr"
account = "OCN-1"

[[contact]]
email = "bob@beta.fr"
account = "OCN-2"

[[contact]]
email = "zoe@beta.fr"
account = "OCN-2"
"#;

/// Recipients of the outbox rows of ticket `n`.
fn told_about(env: &Env, n: i64) -> Vec<String> {
    env.list(&["outbox", "list", "--json"])
        .iter()
        .filter(|r| r["ticket"] == n)
        .map(|r| r["to"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Ticket 1: Paul of Acme reports service S-1 down (Message-ID
/// `root1@acme.fr`).
fn acme_ticket_on_s1(env: &Env) {
    env.write(
        "m1.eml",
        mail(
            "Paul <paul@acme.fr>",
            "root1@acme.fr",
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "S-1 down",
            &[],
            "S-1 is down",
        ),
    );
    env.replay(&["m1.eml"]);
}

/// A service handed over to another customer keeps its old tickets with
/// the old customer: the new owner's subscribers hear of none of them,
/// whoever writes on the ticket.
#[test]
fn a_moved_service_tells_the_new_owner_nothing_of_the_old_tickets() {
    let env = Env::new();
    env.import(TWO_CUSTOMERS);
    acme_ticket_on_s1(&env);
    env.ok(&["services", "add", "S-1", "--account", "OCN-2"]);
    env.ok(&[
        "subscriptions",
        "add",
        "--contact",
        "bob@beta.fr",
        "--group",
        "reactive_service_outage",
        "--service",
        "S-1",
    ]);
    let irt = "In-Reply-To: <root1@acme.fr>";
    env.write(
        "m2.eml",
        mail(
            "Zoe <zoe@beta.fr>",
            "r2@beta.fr",
            "Mon, 2 Mar 2026 09:00:00 +0100",
            "Re: S-1 down",
            &[irt],
            "Same here",
        ),
    );
    env.replay(&["m2.eml"]);
    env.ok(&["tickets", "close", "1"]);
    let told = told_about(&env, 1);
    assert!(told.iter().any(|t| t == "paul@acme.fr"), "{told:?}");
    assert!(
        !told.iter().any(|t| t == "bob@beta.fr"),
        "Beta's staff read Acme's ticket: {told:?}"
    );
    // A new ticket on the service is the new owner's, and reaches Bob.
    env.write(
        "m3.eml",
        mail(
            "Zoe <zoe@beta.fr>",
            "new3@beta.fr",
            "Mon, 2 Mar 2026 10:00:00 +0100",
            "S-1 down again",
            &[],
            "S-1 is down",
        ),
    );
    env.replay(&["m3.eml"]);
    assert!(told_about(&env, 2).iter().any(|t| t == "bob@beta.fr"));
}

/// Acme, `primary_only`, with Marie as primary and Keith as key contact.
const ACME_PRIMARY_ONLY: &str = r#"
[[account]]
number = "OCN-1"
name = "Acme"
domains = ["acme.fr"]
intake = "primary_only"

[[contact]]
email = "marie@acme.fr"
account = "OCN-1"
primary = true

[[contact]]
email = "keith@acme.fr"
account = "OCN-1"

[[subscription]]
contact = "keith@acme.fr"
group = "key_contact"
account = "OCN-1"
"#;

/// A contact created from mail before the directory named its domain
/// falls under the domain's account from then on: its intake policy
/// applies, and its subscribers are told.
#[test]
fn a_contact_created_before_its_account_falls_under_the_domains_account() {
    let env = Env::new();
    let early = |name: &str, id: &str, subject: &str| {
        env.write(
            name,
            mail(
                "Paul Martin <paul@acme.fr>",
                id,
                "Mon, 2 Mar 2026 08:00:00 +0100",
                subject,
                &[],
                "Hello",
            ),
        )
    };
    early("m0.eml", "m0@acme.fr", "before the directory");
    let first = env.replay(&["m0.eml"]);
    assert_eq!(first["new_tickets"], 1, "{first}");
    env.import(ACME_PRIMARY_ONLY);
    early("m1.eml", "m1@acme.fr", "after the directory");
    let second = env.replay(&["m1.eml"]);
    assert_eq!(second["quarantined"], 1, "Paul is not Acme's primary contact: {second}");
    let held = env.list(&["quarantine", "list", "--json"]);
    assert_eq!(find(&held, "from", "paul@acme.fr")["reason"], "not_authorised");

    // The policy is the account's, not a rule against Paul: Marie's
    // request opens a ticket that reaches Keith.
    env.write(
        "m2.eml",
        mail(
            "Marie <marie@acme.fr>",
            "m2@acme.fr",
            "Mon, 2 Mar 2026 09:00:00 +0100",
            "Line down",
            &[],
            "Down",
        ),
    );
    env.replay(&["m2.eml"]);
    assert!(told_about(&env, 2).iter().any(|t| t == "keith@acme.fr"));
}

/// A primary contact moved to another customer is not that customer's
/// approver: the role stays behind, and the command says so.
#[test]
fn a_primary_contact_moved_to_another_account_is_no_longer_primary() {
    let env = Env::new();
    env.import(TWO_CUSTOMERS);
    env.ok(&["contacts", "update", "marie@acme.fr", "--primary", "true"]);
    let out = env.ok(&["contacts", "update", "marie@acme.fr", "--account", "OCN-2"]);
    assert!(out.contains("no longer the primary contact of account OCN-1"), "{out}");
    let marie = env.json(&["contacts", "show", "marie@acme.fr", "--json"]);
    assert_eq!(
        (marie["account"].clone(), marie["primary"].clone()),
        (json!("OCN-2"), json!(false))
    );
    // Said explicitly, the move keeps the role.
    env.ok(&["contacts", "update", "paul@acme.fr", "--primary", "true"]);
    env.ok(&[
        "contacts",
        "update",
        "paul@acme.fr",
        "--account",
        "OCN-2",
        "--primary",
        "true",
    ]);
    let paul = env.json(&["contacts", "show", "paul@acme.fr", "--json"]);
    assert_eq!(paul["primary"], true);
}

/// An account row without `domains` (a rename, a policy change) keeps the
/// account's domains; `domains = []` clears them.
#[test]
fn a_row_without_domains_keeps_the_accounts_domains() {
    let env = Env::new();
    env.import(TWO_CUSTOMERS);
    env.import("[[account]]\nnumber = \"OCN-1\"\nname = \"Acme SA\"\nintake = \"primary_only\"\n");
    let acme = find(&env.list(&["accounts", "list", "--json"]), "number", "OCN-1").clone();
    assert_eq!(
        (acme["name"].clone(), acme["domains"].clone()),
        (json!("Acme SA"), json!(["acme.fr"]))
    );
    env.import("[[account]]\nnumber = \"OCN-1\"\nname = \"Acme SA\"\ndomains = []\n");
    let acme = find(&env.list(&["accounts", "list", "--json"]), "number", "OCN-1").clone();
    assert_eq!(acme["domains"], json!([]));
}

/// Removing an account whose service carries another account's tickets
/// (a service it took over) is refused naming the service, not by a
/// foreign-key error.
#[test]
fn an_account_whose_service_carries_others_tickets_is_not_removed() {
    let env = Env::new();
    env.import(TWO_CUSTOMERS);
    acme_ticket_on_s1(&env);
    env.ok(&["accounts", "add", "OCN-3", "--name", "Gamma"]);
    env.ok(&["services", "add", "S-1", "--account", "OCN-3"]);
    let err = env.fail2(&["accounts", "remove", "OCN-3"]);
    assert!(err.contains("service S-1 (1 tickets)"), "{err}");
    assert_eq!(
        find(&env.list(&["services", "list", "--json"]), "id", "S-1")["account"],
        "OCN-3"
    );
}

/// An approval account with nobody to approve is saved with a warning, and
/// a request to it says so on the ticket.
#[test]
fn an_approval_account_without_a_primary_is_pointed_out() {
    let env = Env::new();
    env.import(TWO_CUSTOMERS);
    let out = env.ok(&["accounts", "add", "OCN-2", "--intake", "approval"]);
    assert!(
        out.contains("warning: account OCN-2 has intake approval but no primary contact"),
        "{out}"
    );
    env.write(
        "m1.eml",
        mail(
            "Bob <bob@beta.fr>",
            "b1@beta.fr",
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "New line",
            &[],
            "Please",
        ),
    );
    env.replay(&["m1.eml"]);
    let ticket = env.json(&["tickets", "show", "1", "--json"]);
    assert_eq!(ticket["status"], "awaiting_approval");
    assert!(
        ticket.to_string().contains("no primary contact who can be asked"),
        "{ticket}"
    );
    env.ok(&["contacts", "update", "zoe@beta.fr", "--primary", "true"]);
    let out = env.ok(&["accounts", "add", "OCN-2", "--intake", "approval"]);
    assert!(!out.contains("warning"), "{out}");
}

/// Beta (OCN-2) with intake `approval`: zoe@ its primary contact, kim@ a
/// key contact who hears of its new tickets.
fn approval_customer() -> Env {
    let env = Env::new();
    env.import(TWO_CUSTOMERS);
    env.import(
        "[[contact]]\nemail = \"kim@beta.fr\"\naccount = \"OCN-2\"\n\n\
[[subscription]]\ncontact = \"kim@beta.fr\"\ngroup = \"key_contact\"\naccount = \"OCN-2\"\n",
    );
    env.ok(&["contacts", "update", "zoe@beta.fr", "--primary", "true"]);
    env.ok(&["accounts", "add", "OCN-2", "--intake", "approval"]);
    env
}

/// Found by a review: on approval, subscribers were told that the support
/// address opened the ticket, without the request's text.
#[test]
fn an_approved_request_reaches_subscribers_as_its_requester_wrote_it() {
    let env = approval_customer();
    env.write(
        "m1.eml",
        mail(
            "Bob Martin <bob@beta.fr>",
            "b1@beta.fr",
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "VPN",
            &[],
            "Please add a VPN access for Lea.",
        ),
    );
    env.replay(&["m1.eml"]);
    env.ok(&["tickets", "approve", "1"]);
    let ticket = env.json(&["tickets", "show", "1", "--json"]);
    let rows = ticket["messages"].as_array().cloned().unwrap_or_default();
    let to_kim = rows
        .iter()
        .find(|r| r["to"] == "kim@beta.fr" && r["event"] == "new_ticket")
        .unwrap_or_else(|| panic!("{ticket:#?}"));
    let body = to_kim["text"].as_str().unwrap_or_default();
    assert!(
        body.contains("bob@beta.fr has opened") && body.contains("Please add a VPN access for Lea."),
        "{body}"
    );
    assert!(!body.contains("support@provider.test has opened"), "{body}");
}

/// Found by an audit: a request closed while it awaited approval, then
/// answered by its requester, reopened as `open`: the approval skipped,
/// and the account's subscribers told of a request no primary had seen.
/// It reopens awaiting approval again; once approved, a later close and
/// reply reopen it as `open`.
#[test]
fn a_request_closed_before_approval_reopens_awaiting_it() {
    let env = approval_customer();
    let bob = |id: &str, reply_to: Option<&str>, body: &str| {
        let extra: Vec<String> = reply_to.map(|r| format!("In-Reply-To: <{r}>")).into_iter().collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        mail(
            "Bob Martin <bob@beta.fr>",
            id,
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "VPN",
            &extra,
            body,
        )
    };
    env.write("m1.eml", bob("b1@beta.fr", None, "Please add a VPN access for Lea."));
    env.replay(&["m1.eml"]);
    env.ok(&["tickets", "close", "1"]);
    env.write("m2.eml", bob("b2@beta.fr", Some("b1@beta.fr"), "Why was it closed?"));
    env.replay(&["m2.eml"]);
    let ticket = env.json(&["tickets", "show", "1", "--json"]);
    assert_eq!(ticket["status"], "awaiting_approval", "{ticket:#}");
    assert!(ticket.to_string().contains("awaits approval again"), "{ticket}");
    let to_kim = env
        .list(&["outbox", "list", "--json"])
        .into_iter()
        .filter(|r| r["to"] == "kim@beta.fr")
        .count();
    assert_eq!(to_kim, 0, "a subscriber heard of an unapproved request");

    env.ok(&["tickets", "approve", "1"]);
    env.ok(&["tickets", "close", "1"]);
    env.write("m3.eml", bob("b3@beta.fr", Some("b2@beta.fr"), "One more thing."));
    env.replay(&["m3.eml"]);
    assert_eq!(env.json(&["tickets", "show", "1", "--json"])["status"], "open");
}

/// Found by an audit: a contact without an account, writing from a French
/// account's domain, got the acknowledgement in French and the ticket's
/// later news (its close) in English.
#[test]
fn a_requester_without_an_account_hears_in_the_ticket_accounts_language() {
    let env = Env::new();
    env.import(
        "[[account]]\nnumber = \"OCN-7\"\nname = \"Acme\"\ndomains = [\"acme.fr\"]\nlanguage = \"fr\"\n\
[[contact]]\nemail = \"noacct@acme.fr\"\n",
    );
    env.write(
        "m1.eml",
        mail(
            "Léa <noacct@acme.fr>",
            "n1@acme.fr",
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "Panne",
            &[],
            "Ca ne marche pas.",
        ),
    );
    env.replay(&["m1.eml"]);
    env.ok(&["tickets", "close", "1"]);
    let ticket = env.json(&["tickets", "show", "1", "--json"]);
    let rows = ticket["messages"].as_array().cloned().unwrap_or_default();
    for event in ["acknowledgement", "ticket_closed"] {
        let row = rows
            .iter()
            .find(|r| r["to"] == "noacct@acme.fr" && r["event"] == event)
            .unwrap_or_else(|| panic!("{event}: {ticket:#}"));
        let text = row["text"].as_str().unwrap_or_default();
        assert!(text.starts_with("Bonjour"), "{event}: {text}");
    }
}

/// Found by an audit: a sub-address is its mailbox's person (RFC 5233), as
/// ignore rules already held: `ign+x@` got past `ign@`'s ignore flag, and
/// `marie+noc@` writing got `marie@`, a subscriber, told of her own mail.
#[test]
fn a_sub_address_is_its_mailbox_for_ignoring_and_for_not_telling_the_author() {
    let env = Env::new();
    env.import(
        "[[account]]\nnumber = \"OCN-7\"\nname = \"Acme\"\ndomains = [\"acme.fr\"]\n\
[[contact]]\nemail = \"ign@acme.fr\"\naccount = \"OCN-7\"\nignore = true\n\
[[contact]]\nemail = \"marie@acme.fr\"\naccount = \"OCN-7\"\n\
[[contact]]\nemail = \"kim@acme.fr\"\naccount = \"OCN-7\"\n\
[[subscription]]\ncontact = \"marie@acme.fr\"\ngroup = \"key_contact\"\naccount = \"OCN-7\"\n\
[[subscription]]\ncontact = \"kim@acme.fr\"\ngroup = \"key_contact\"\naccount = \"OCN-7\"\n",
    );
    env.write(
        "in/1.eml",
        mail(
            "<ign+x@acme.fr>",
            "i1@acme.fr",
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "Spam",
            &[],
            "x",
        ),
    );
    env.write(
        "in/2.eml",
        mail(
            "Marie <marie+noc@acme.fr>",
            "m1@acme.fr",
            "Mon, 2 Mar 2026 08:01:00 +0100",
            "Panne",
            &[],
            "Down.",
        ),
    );
    let summary = env.replay(&["in"]);
    assert_eq!(
        (summary["ignored"].clone(), summary["new_tickets"].clone()),
        (json!(1), json!(1)),
        "{summary}"
    );
    let told: Vec<String> = env
        .list(&["outbox", "list", "--json"])
        .iter()
        .filter(|r| r["event"] == "new_ticket")
        .map(|r| r["to"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(told, ["kim@acme.fr"]);
}

/// Found by a review: a refusal answered "Odp: Výpadok" with "Re: Odp:
/// Výpadok".
#[test]
fn a_refusal_answers_with_one_re() {
    let env = Env::new();
    env.import(ACME_PRIMARY_ONLY);
    env.write(
        "m1.eml",
        mail(
            "Paul <paul@acme.fr>",
            "p1@acme.fr",
            "Mon, 2 Mar 2026 08:00:00 +0100",
            "Odp: RE: Výpadok",
            &[],
            "Down",
        ),
    );
    env.replay(&["m1.eml"]);
    let rows = env.list(&["outbox", "list", "--json"]);
    let refusal = find(&rows, "event", "refusal");
    assert_eq!(refusal["subject"], "Re: Výpadok", "{rows:#?}");
}
