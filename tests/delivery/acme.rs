//! The customer the delivery tests notify, and the mail that starts it.

use crate::desk::Desk;

/// Acme: its requester Marie (French), a key contact at account level
/// (German), a NOC on the MPLS service (Italian), and people who must not
/// hear about an MPLS outage: planned works, and the NOC of another service.
pub fn acme(desk: &Desk) -> String {
    for u in ["marie", "key", "noc", "planned", "othernoc", "victim"] {
        desk.user(u);
    }
    let toml = r#"
[[account]]
number = "OCN-1"
name = "Acme SA"
domains = ["example.test"]
language = "fr"

[[service]]
id = "PAR/MPLS/000001"
account = "OCN-1"
name = "MPLS Paris"

[[service]]
id = "LON/ETH/000002"
account = "OCN-1"
name = "Ethernet London"

[[contact]]
email = "marie@example.test"
first_name = "Marie"
last_name = "Dupont"
account = "OCN-1"

[[contact]]
email = "key@example.test"
first_name = "Karl"
last_name = "Keller"
account = "OCN-1"
language = "de"

[[contact]]
email = "noc@example.test"
first_name = "Nora"
last_name = "Conti"
account = "OCN-1"
language = "it"

[[contact]]
email = "planned@example.test"
account = "OCN-1"

[[contact]]
email = "othernoc@example.test"
account = "OCN-1"

[[subscription]]
contact = "key@example.test"
group = "key_contact"
account = "OCN-1"

[[subscription]]
contact = "noc@example.test"
group = "reactive_service_outage"
service = "PAR/MPLS/000001"

[[subscription]]
contact = "planned@example.test"
group = "planned_works"
account = "OCN-1"

[[subscription]]
contact = "othernoc@example.test"
group = "reactive_service_outage"
service = "LON/ETH/000002"
"#;
    desk.directory(toml);
    toml.to_string()
}

pub fn outage(subject: &str) -> Vec<u8> {
    format!(
        "From: Marie Dupont <marie@example.test>\r\nTo: support@example.test\r\nSubject: {subject}\r\n\
Message-ID: <outage-1@example.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour, le lien PAR/MPLS/000001 est coup\u{e9} depuis 9h40.\r\n"
    )
    .into_bytes()
}
