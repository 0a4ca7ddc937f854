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
