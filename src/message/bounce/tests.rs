//! Delivery reports of each shape, written by hand after the MTAs' formats.

use crate::message::{Message, ReportKind};

fn parse(raw: &str) -> Message {
    Message::parse(raw.replace('\n', "\r\n").as_bytes()).expect("parses")
}

const DSN: &str = "From: Mail Delivery System <MAILER-DAEMON@mx.acme.test>
To: support@provider.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.acme.test>
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.test

Final-Recipient: rfc822; Marie.Dupont@acme.test
Original-Recipient: rfc822;marie@acme.test
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 550 5.1.1 <marie.dupont@acme.test>: Recipient address
 rejected: User unknown

Final-Recipient: rfc822; noc@acme.test
Action: delayed
Status: 4.4.1
Diagnostic-Code: smtp; 451 try again later

--B
Content-Type: message/rfc822

From: support@provider.test
To: marie.dupont@acme.test
Subject: [#12] Panne
Message-ID: <mailroom.12.ab@provider.test>

Bonjour
--B--
";

#[test]
fn rfc3464_report_gives_each_recipient_and_the_original_id() {
    let m = parse(DSN);
    let r = m.delivery_report.expect("a report");
    assert_eq!(r.kind, ReportKind::Dsn);
    assert_eq!(r.reporting_mta.as_deref(), Some("mx.acme.test"));
    assert_eq!(r.original_message_id.as_deref(), Some("mailroom.12.ab@provider.test"));
    assert_eq!(r.recipients.len(), 2);
    let first = &r.recipients[0];
    assert_eq!(first.address, "marie.dupont@acme.test");
    assert_eq!(first.original_address.as_deref(), Some("marie@acme.test"));
    assert_eq!(first.action.as_deref(), Some("failed"));
    // The generic 5.0.0 gives way to the diagnostic's more precise code.
    assert_eq!(first.status.as_deref(), Some("5.1.1"));
    assert!(first.diagnostic.as_deref().unwrap().contains("User unknown"));
    assert!(first.permanent);
    let second = &r.recipients[1];
    assert_eq!((second.status.as_deref(), second.permanent), (Some("4.4.1"), false));
    assert_eq!(r.permanent_failures().count(), 1);
}

#[test]
fn recipients_without_blank_lines_between_them_are_split() {
    let raw = DSN.replace(
        "rejected: User unknown\n\nFinal-Recipient: rfc822; noc",
        "rejected: User unknown\nFinal-Recipient: rfc822; noc",
    );
    let r = parse(&raw).delivery_report.unwrap();
    let addresses: Vec<&str> = r.recipients.iter().map(|x| x.address.as_str()).collect();
    assert_eq!(addresses, ["marie.dupont@acme.test", "noc@acme.test"]);
    assert_eq!(r.recipients[1].action.as_deref(), Some("delayed"));
}

#[test]
fn returned_headers_part_gives_the_original_id() {
    let raw = DSN.replace("Content-Type: message/rfc822", "Content-Type: text/rfc822-headers");
    let r = parse(&raw).delivery_report.unwrap();
    assert_eq!(r.original_message_id.as_deref(), Some("mailroom.12.ab@provider.test"));
}

#[test]
fn qmail_prose_bounce_from_a_bare_mailer_daemon() {
    let raw = "From: MAILER-DAEMON
To: support@provider.test
Subject: failure notice
Return-Path: <>

Hi. This is the qmail-send program at mx.acme.test.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<jan.novak@acme.test>:
192.0.2.7 does not like recipient.
Remote host said: 550 5.1.1 <jan.novak@acme.test>... User unknown
Giving up on 192.0.2.7.

--- Below this line is a copy of the message.

Return-Path: <support@provider.test>
Message-ID: <mailroom.7.cd@provider.test>
From: support@provider.test
To: jan.novak@acme.test

Dobry den
";
    let m = parse(raw);
    assert_eq!(m.from.address, "", "no usable sender, yet parsed");
    let r = m.delivery_report.expect("a report");
    assert_eq!(r.kind, ReportKind::Text);
    assert_eq!(r.recipients.len(), 1, "{r:?}");
    assert_eq!(r.recipients[0].address, "jan.novak@acme.test");
    assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    assert!(r.recipients[0].permanent);
    assert_eq!(r.original_message_id.as_deref(), Some("mailroom.7.cd@provider.test"));
}

#[test]
fn exim_failed_recipients_header_names_the_recipients() {
    let raw = "From: Mail Delivery System <Mailer-Daemon@mx.acme.test>
To: support@provider.test
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: anna@acme.test

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  anna@acme.test
    SMTP error from remote mail server after RCPT TO:<anna@acme.test>:
    host mx.acme.test [192.0.2.1]: 550 No such user here
";
    let r = parse(raw).delivery_report.unwrap();
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].address, "anna@acme.test");
    assert_eq!(r.recipients[0].status.as_deref(), Some("5.0.0"));
    assert!(r.recipients[0].permanent);
}

#[test]
fn empty_from_is_accepted_for_a_delay_warning_only_as_a_report() {
    let raw = "From: <>
To: support@provider.test
Subject: Warning: message delayed 24 hours
Return-Path: <>

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue. It will be retried.

  luca@acme.test
    host mx.acme.test: 451 4.2.0 mailbox busy
";
    let m = parse(raw);
    assert_eq!(m.from.address, "");
    let r = m.delivery_report.unwrap();
    assert_eq!(r.recipients[0].action.as_deref(), Some("delayed"));
    assert_eq!(r.recipients[0].status.as_deref(), Some("4.2.0"));
    assert!(!r.is_permanent());
}

#[test]
fn ordinary_mail_has_no_report_and_still_needs_a_sender() {
    let m =
        parse("From: a@acme.test\nSubject: Delivery of the new router\n\nThe delivery failed twice, can you check?\n");
    assert!(m.delivery_report.is_none());
    let f = Message::parse(b"From: <>\r\nSubject: hello\r\n\r\nJust a note.\r\n").unwrap_err();
    assert_eq!(f.reason, "no valid From address");
}

#[test]
fn sender_falls_back_to_the_envelope() {
    let m = parse("Sender: Desk <desk@acme.test>\nSubject: x\n\ny\n");
    assert_eq!(m.from.address, "desk@acme.test");
    let m = parse("Return-Path: <ops@acme.test>\nSubject: x\n\ny\n");
    assert_eq!(m.from.address, "ops@acme.test");
}

#[test]
fn feedback_report_names_the_complaining_recipient() {
    let raw = "From: feedback@isp.test
To: support@provider.test
Subject: Abuse report
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"

--F
Content-Type: text/plain

This is an abuse report.
--F
Content-Type: message/feedback-report

Feedback-Type: abuse
Original-Rcpt-To: <eva@isp.test>
--F
Content-Type: text/rfc822-headers

Message-ID: <mailroom.3.ef@provider.test>
From: support@provider.test
--F--
";
    let r = parse(raw).delivery_report.unwrap();
    assert_eq!(r.kind, ReportKind::Feedback);
    assert_eq!(r.recipients[0].address, "eva@isp.test");
    assert!(!r.is_permanent());
    assert_eq!(r.original_message_id.as_deref(), Some("mailroom.3.ef@provider.test"));
}

#[test]
fn a_status_code_is_not_read_out_of_an_address_or_a_version() {
    use super::dsn::status_code;
    assert_eq!(status_code("550 5.1.1 user unknown").as_deref(), Some("5.1.1"));
    assert_eq!(status_code("(5.7.1)").as_deref(), Some("5.7.1"));
    assert_eq!(status_code("host 10.2.4.5 is down"), None);
    assert_eq!(status_code("firmware 2.4.10.3 and 4.2.1.7"), None);
    assert_eq!(status_code("router 192.168.5.1.1"), None);
    // The first real one after a false one.
    assert_eq!(status_code("at 10.4.4.2: 4.4.1 no answer").as_deref(), Some("4.4.1"));
}
