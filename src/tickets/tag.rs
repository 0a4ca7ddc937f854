//! The ticket tag in subjects (`[#123]` by default).
//!
//! Clients that drop In-Reply-To still keep the subject, so the tag is the
//! second way a reply finds its ticket. The format is configurable because
//! teams migrating from another helpdesk keep their customers' habits
//! (`[support-123]`, `Ticket#123`).

use regex::Regex;

/// A compiled tag format.
#[derive(Debug, Clone)]
pub struct TagFormat {
    format: String,
    pattern: Regex,
}

impl TagFormat {
    /// `format` must contain `{number}` exactly once.
    pub fn new(format: &str) -> Result<TagFormat, String> {
        if format.matches("{number}").count() != 1 {
            return Err(format!("{format:?} must contain {{number}} exactly once"));
        }
        let (before, after) = format.split_once("{number}").unwrap_or((format, ""));
        if before.trim().is_empty() && after.trim().is_empty() {
            return Err(format!(
                "{format:?} needs some text around {{number}}, or any number in a subject would match"
            ));
        }
        let pattern = Regex::new(&format!(
            "(?i){}([0-9]{{1,18}}){}",
            regex::escape(before),
            regex::escape(after)
        ))
        .map_err(|e| e.to_string())?;
        Ok(TagFormat {
            format: format.to_string(),
            pattern,
        })
    }

    /// The tag of ticket `number`.
    pub fn render(&self, number: i64) -> String {
        self.format.replace("{number}", &number.to_string())
    }

    /// The first ticket number tagged in a subject.
    pub fn find(&self, subject: &str) -> Option<i64> {
        self.pattern
            .captures(subject)
            .and_then(|c| c.get(1))
            .and_then(|m| m.as_str().parse().ok())
    }

    /// The subject without any tag.
    pub fn strip(&self, subject: &str) -> String {
        self.pattern.replace_all(subject, " ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format() {
        let t = TagFormat::new("[#{number}]").unwrap();
        assert_eq!(t.render(42), "[#42]");
        assert_eq!(t.find("Re: [#42] Panne"), Some(42));
        assert_eq!(t.find("Re: #42 Panne"), None);
        assert_eq!(
            t.strip("Re: [#42] Panne").split_whitespace().collect::<Vec<_>>(),
            ["Re:", "Panne"]
        );
    }

    #[test]
    fn custom_format_and_refusals() {
        let t = TagFormat::new("[support-{number}]").unwrap();
        assert_eq!(t.find("AW: [SUPPORT-7] x"), Some(7));
        assert!(TagFormat::new("{number}").is_err());
        assert!(TagFormat::new("[#]").is_err());
    }
}
