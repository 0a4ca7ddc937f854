//! File-name sanitising and attachment metadata.

use super::*;
use crate::message::Message;

#[test]
fn path_separators_and_dot_dot_go() {
    assert_eq!(sanitise_file_name("../../etc/passwd"), "passwd");
    assert_eq!(sanitise_file_name("C:\\Users\\marie\\Desktop\\plan.pdf"), "plan.pdf");
    assert_eq!(sanitise_file_name("report..pdf"), "report.pdf");
    assert_eq!(sanitise_file_name(".."), "attachment");
    assert_eq!(sanitise_file_name("..."), "attachment");
    assert_eq!(sanitise_file_name(".hidden"), "hidden");
    assert_eq!(sanitise_file_name("trailing. "), "trailing");
}

#[test]
fn control_and_format_characters_go() {
    assert_eq!(sanitise_file_name("a\r\nb\tc\u{0}.txt"), "a  b c .txt");
    assert_eq!(sanitise_file_name("invoice\u{202e}fdp.exe"), "invoice fdp.exe");
    // Characters only Windows forbids are kept: names are stored by id.
    assert_eq!(sanitise_file_name("Call: HW? <x>.eml"), "Call: HW? <x>.eml");
}

#[test]
fn empty_names_become_attachment() {
    assert_eq!(sanitise_file_name(""), "attachment");
    assert_eq!(sanitise_file_name("   "), "attachment");
    assert_eq!(sanitise_file_name("dir/"), "attachment");
}

#[test]
fn long_names_keep_their_extension() {
    let long = format!("{}.pdf", "a".repeat(300));
    let s = sanitise_file_name(&long);
    assert_eq!(s.len(), MAX_FILE_NAME);
    assert!(s.ends_with("a.pdf"));
    // Multi-byte letters are cut on a character boundary.
    let long = format!("{}.txt", "é".repeat(200));
    let s = sanitise_file_name(&long);
    assert!(s.len() <= MAX_FILE_NAME && s.ends_with(".txt"), "{s}");
    assert_eq!(sanitise_file_name("Lebenslauf.pdf"), "Lebenslauf.pdf");
    assert_eq!(
        sanitise_file_name("Hofjägeralle Wasserschaden.jpg"),
        "Hofjägeralle Wasserschaden.jpg"
    );
}

#[test]
fn metadata_of_each_part() {
    let raw = "From: a@acme.test
Subject: photos
Content-Type: multipart/related; boundary=\"R\"

--R
Content-Type: text/html; charset=utf-8

<p>See <img src=\"cid:img1@acme.test\"></p>
--R
Content-Type: image/png
Content-ID: <img1@acme.test>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--R
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''Pl%C3%A1n%20..%2F%2E%2Eplan.pdf
Content-Transfer-Encoding: base64

JVBERi0=
--R
Content-Type: application/octet-stream
Content-Disposition: attachment; filename=\"Fr\u{00f6}sche.txt\"

x
--R--
"
    .replace('\n', "\r\n");
    let m = Message::parse(raw.as_bytes()).unwrap();
    assert_eq!(m.files.len(), 3, "{:?}", m.files);
    let img = &m.files[0];
    assert_eq!(img.content_type, "image/png");
    assert_eq!(img.content_id.as_deref(), Some("img1@acme.test"));
    assert!(img.inline);
    assert_eq!(img.data, b"\x89PNG\r\n\x1a\n");
    assert_eq!(img.size, 8);
    assert_eq!(img.file_name, "image.png");
    let pdf = &m.files[1];
    assert_eq!(pdf.file_name, "plan.pdf");
    assert!(!pdf.inline);
    assert_eq!(pdf.data, b"%PDF-");
    assert_eq!(m.files[2].file_name, "Frösche.txt");
}

#[test]
fn raw_latin1_file_name_is_decoded() {
    let mut raw = b"From: a@acme.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\r\nhi\r\n--B\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"Hasen und Fr"
        .to_vec();
    raw.extend(b"\xf6sche.txt\"\r\n\r\nx\r\n--B--\r\n");
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.files[0].file_name, "Hasen und Frösche.txt");
    assert_eq!(m.attachments, vec!["Hasen und Frösche.txt"]);
}

/// Found by a review (Zammad's mail062): unnamed parts got `attachment.bin`
/// and colliding names; Outlook's inline pictures are named in their
/// Content-ID only.
#[test]
fn unnamed_parts_get_a_usable_distinct_name() {
    let raw = "From: a@acme.test\nSubject: x\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\n\
Content-Type: text/plain\n\nhi\n--B\nContent-Type: video/quicktime\nContent-Disposition: attachment\n\nmov-one\n\
--B\nContent-Type: video/quicktime\nContent-Disposition: attachment\n\nmov-two\n\
--B\nContent-Type: image/jpeg\nContent-ID: <image001.jpg@01D2A3B4.C5D6E7F0>\n\njpeg\n\
--B\nContent-Type: image/jpeg\nContent-Disposition: inline\n\njpeg-a\n\
--B\nContent-Type: image/jpeg\nContent-Disposition: inline\n\njpeg-b\n--B--\n"
        .replace('\n', "\r\n");
    let m = Message::parse(raw.as_bytes()).unwrap();
    let names: Vec<&str> = m.files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(
        names,
        ["video.mov", "video-2.mov", "image001.jpg", "image.jpg", "image-2.jpg"]
    );
}

/// Found by an audit: a forwarded mail named by its subject lost what came
/// before a `/` in it, the subject taken for a path.
#[test]
fn a_name_made_from_a_subject_keeps_its_slashes_as_dashes() {
    let raw = "From: a@acme.test\nSubject: Fwd\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\n\
Content-Type: text/plain\n\nsee attached\n--B\nContent-Type: message/rfc822\n\n\
From: b@acme.test\nSubject: Invoice 2024/05 overdue\n\nPay.\n--B--\n"
        .replace('\n', "\r\n");
    let m = Message::parse(raw.as_bytes()).unwrap();
    assert_eq!(m.files[0].file_name, "Invoice 2024-05 overdue.eml");
}
