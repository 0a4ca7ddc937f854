//! Reply trimming, one case per client habit and language.

use super::new_part;

fn reply_above(marker: &str) -> String {
    new_part(&format!(
        "Merci, c'est réparé.\n\n{marker}\n> La ligne est coupée.\n> Marie\n"
    ))
}

#[test]
fn attribution_lines_in_each_language() {
    for marker in [
        "On Mon, 2 Mar 2026 at 10:00, Marie Dupont <marie@acme.test> wrote:",
        "Le lun. 2 mars 2026 à 10:00, Marie Dupont <marie@acme.test> a écrit :",
        "Il giorno lun 2 mar 2026 alle ore 10:00 Marie Dupont <marie@acme.test> ha scritto:",
        "Dňa po 2. 3. 2026 o 10:00 Marie Dupont <marie@acme.test> napísal(a):",
        "Am Mo., 2. März 2026 um 10:00 Uhr schrieb Marie Dupont <marie@acme.test>:",
        "Marie Dupont <marie@acme.test> schrieb am Mo., 2. März 2026 um 10:00 Uhr:",
        "El lun, 2 mar 2026 a las 10:00, Marie Dupont (<marie@acme.test>) escribió:",
        "Em seg., 2 de mar. de 2026 às 10:00, Marie Dupont <marie@acme.test> escreveu:",
        "Op ma 2 mrt. 2026 om 10:00 schreef Marie Dupont <marie@acme.test>:",
        "W dniu 2.03.2026 o 10:00 Marie Dupont <marie@acme.test> pisze:",
        "Den 2. mar. 2026 kl. 10.00 skrev Marie Dupont <marie@acme.test>:",
        "2026-03-02 10:00 GMT+01:00 Marie Dupont <marie@acme.test>:",
    ] {
        assert_eq!(reply_above(marker), "Merci, c'est réparé.", "{marker}");
    }
}

#[test]
fn attribution_wrapped_over_lines() {
    let text = "Thanks!\n\nOn Mon, 2 Mar 2026 at 10:00, Marie Dupont <\nmarie@acme.test> wrote:\n\n> old\n";
    assert_eq!(new_part(text), "Thanks!");
}

#[test]
fn outlook_blocks_and_separators() {
    let outlook = "Fixed.\n\nFrom: Marie Dupont <marie@acme.test>\nSent: Monday, March 2, 2026 10:00\n\
To: support@provider.test\nSubject: Panne\n\nLa ligne est coupée.\n";
    assert_eq!(new_part(outlook), "Fixed.");
    let original = "Fixed.\n\n-----Original Message-----\nFrom: Marie\n\nold\n";
    assert_eq!(new_part(original), "Fixed.");
    let german = "Erledigt.\n\n-----Ursprüngliche Nachricht-----\nVon: Marie\n";
    assert_eq!(new_part(german), "Erledigt.");
    let underscores = "Done.\n________________________________\nFrom: Marie\nSent: today\n";
    assert_eq!(new_part(underscores), "Done.");
    let apple = "See below.\n\nBegin forwarded message:\n\nFrom: Marie\n";
    assert_eq!(new_part(apple), "See below.");
}

#[test]
fn signatures_are_dropped() {
    assert_eq!(new_part("Works now.\n\n-- \nJan Novák\nACME"), "Works now.");
    assert_eq!(new_part("Works now.\n\nSent from my iPhone"), "Works now.");
    assert_eq!(new_part("Works now.\n\nEnvoyé de mon iPhone"), "Works now.");
    assert_eq!(new_part("Works now.\nVon meinem iPhone gesendet"), "Works now.");
}

#[test]
fn quotes_interleaved_or_only_are_kept() {
    let interleaved = "> Is it down?\n\nYes, since 9:00.";
    assert_eq!(new_part(interleaved), interleaved);
    assert_eq!(new_part("> only a quote"), "> only a quote");
    // Bottom-posting: the reply is below the quote.
    let below = "On Mon, 2 Mar 2026, Marie <m@acme.test> wrote:\n> Is it down?\n\nYes.";
    assert_eq!(new_part(below), "Yes.");
}

#[test]
fn ordinary_text_is_untouched() {
    let text = "I wrote a script for it:\n\n```\n####\n--\n```\n\nOn Monday we deploy.";
    assert_eq!(new_part(text), text);
    assert_eq!(new_part("\r\n\r\nHello\r\n\r\n"), "Hello");
    assert_eq!(new_part(""), "");
}

/// Found by a review: a heading's underline cut the rest of the message
/// out of what update notices quote.
#[test]
fn an_underlined_heading_is_text_not_a_separator() {
    let text = "Update on the Lyon outage:\n\nSite A\n==========\nRouter replaced, link up.\n\nSite B\n----------\nStill down, please send a technician.\n\n-- \nJean";
    let new = new_part(text);
    assert!(new.contains("Still down, please send a technician."), "{new}");
    assert!(!new.contains("Jean"), "the signature still goes: {new}");
    // A separator after a blank line is still one.
    assert_eq!(new_part("Link is down.\n\n=====\nAcme SA, 1 rue X"), "Link is down.");
}

/// Found by a review: a sentence in the words of an attribution ("Le
/// technicien a écrit :") cut the French and Italian replies down to their
/// greeting; it is one only with a date, an address or a quote after it.
#[test]
fn a_sentence_reading_like_an_attribution_is_text() {
    let fr = "Bonjour,\n\nLe technicien sur place a écrit :\n\"le port 24 du switch est HS\"\n\nPouvez-vous envoyer le module demain ?\n\nMerci,\nMarie";
    assert_eq!(new_part(fr), fr);
    let it =
        "Buongiorno,\n\nIl cliente ha scritto:\nla linea cade ogni sera alle 22\n\nPotete mandare un tecnico domani?";
    assert!(new_part(it).contains("Potete mandare un tecnico domani?"));
    // With a quote after it, the same words are an attribution.
    let quoted = "Oui, c'est réparé.\n\nLe technicien a écrit :\n> le port 24 est HS\n> merci";
    assert_eq!(new_part(quoted), "Oui, c'est réparé.");
}

/// Found by a review: a line like a mobile signature with the author's
/// text after it is the author's text.
#[test]
fn a_sent_by_line_in_the_middle_is_text() {
    let text = "Hello,\n\nThe replacement router arrived broken.\nSent by DHL on Monday, tracking number 1Z999AA10123456784.\nThe box was crushed; photos are attached.\n\nThanks";
    assert_eq!(new_part(text), text);
    assert_eq!(new_part("Done.\n\nSent from my iPhone\n\n> earlier"), "Done.");
    assert_eq!(new_part("Done.\n\nSent from my iPhone"), "Done.");
}
