//! Notification templates: one file per event and language.
//!
//! The built-in set (`templates/<event>.<lang>.txt`) is compiled into the
//! binary; a `templates.dir` in the config replaces any of them file by file,
//! so a team can reword one mail without copying all 35. The first line of a
//! file is `Subject: …`, the rest is the body.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::Event;
use crate::config::LANGUAGES;
use crate::error::{Error, Result};
use crate::message::clean_header_text;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_templates.rs"));
}

/// The loaded template set.
pub struct Templates {
    env: Environment<'static>,
    names: Vec<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("names", &self.names).finish()
    }
}

/// A rendered mail text.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl Templates {
    /// Built-in templates, overridden by `*.txt` files in `dir`.
    ///
    /// Every template is rendered once here with a made-up notice
    /// ([`super::outbox::rehearse`]) and variables are strict, so a
    /// template that parses but cannot render (a misspelt variable, a
    /// filter on the wrong type) fails `check-config`, start and reload,
    /// instead of failing every notification of that event later. A `.txt`
    /// file whose name is no event and language is refused, not ignored:
    /// it is an override the operator meant to make.
    pub fn load(dir: Option<&Path>) -> Result<Templates> {
        let mut sources: BTreeMap<String, String> = builtin::BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        if let Some(dir) = dir {
            let entries =
                std::fs::read_dir(dir).map_err(|e| Error::Config(format!("templates.dir {}: {e}", dir.display())))?;
            for entry in entries {
                let path = entry.map_err(|e| Error::io(dir, e))?.path();
                if path.extension().is_some_and(|x| x == "txt") {
                    let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
                    if !is_template_name(&name) {
                        return Err(Error::Template {
                            name: path.display().to_string(),
                            detail: format!(
                                "not a template: the name must be <event>.<language>.txt, with an event among {} and a language among {}",
                                Event::ALL.map(Event::as_str).join(", "),
                                LANGUAGES.join(", ")
                            ),
                        });
                    }
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    sources.insert(name, text);
                }
            }
        }
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, text) in &sources {
            if !text.starts_with("Subject:") {
                return Err(Error::Template {
                    name: name.clone(),
                    detail: "the first line must be `Subject: …`".into(),
                });
            }
            // A NUL (or another control character but a line break or tab)
            // would go into every notification: PostgreSQL refuses NUL in
            // text, so every mail notifying anyone was quarantined there.
            if let Some((line, c)) = text.lines().enumerate().find_map(|(i, l)| {
                l.chars()
                    .find(|c| c.is_control() && !matches!(c, '\t' | '\r'))
                    .map(|c| (i + 1, c))
            }) {
                return Err(Error::Template {
                    name: name.clone(),
                    detail: format!(
                        "line {line} holds the control character U+{:04X}; remove it",
                        u32::from(c)
                    ),
                });
            }
            env.add_template_owned(name.clone(), text.clone())
                .map_err(|e| Error::Template {
                    name: name.clone(),
                    detail: e.to_string(),
                })?;
        }
        for event in Event::ALL {
            let name = format!("{}.en", event.as_str());
            if !sources.contains_key(&name) {
                return Err(Error::Template {
                    name,
                    detail: "missing (every event needs an English template)".into(),
                });
            }
        }
        let templates = Templates {
            env,
            names: sources.into_keys().collect(),
        };
        super::outbox::rehearse(&templates)?;
        Ok(templates)
    }

    /// Every loaded template as (event, language).
    pub fn every(&self) -> impl Iterator<Item = (Event, &str)> {
        self.names.iter().filter_map(|n| {
            let (event, lang) = n.split_once('.')?;
            Some((Event::parse(event)?, lang))
        })
    }

    /// Renders `event` in `language` (English when that language has no
    /// template).
    pub fn render(&self, event: Event, language: &str, ctx: impl Serialize) -> Result<Rendered> {
        let wanted = format!("{}.{language}", event.as_str());
        let name = if self.names.contains(&wanted) {
            wanted
        } else {
            format!("{}.en", event.as_str())
        };
        let tmpl = self.env.get_template(&name).map_err(|e| Error::Template {
            name: name.clone(),
            detail: e.to_string(),
        })?;
        let text = tmpl.render(ctx).map_err(|e| Error::Template {
            name: name.clone(),
            detail: e.to_string(),
        })?;
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = clean_header_text(first.trim_start_matches("Subject:"));
        Ok(Rendered {
            subject,
            body: body.trim_start_matches(['\r', '\n']).to_string(),
        })
    }

    /// Whether a template exists for this event and language.
    pub fn has(&self, event: Event, language: &str) -> bool {
        self.names.contains(&format!("{}.{language}", event.as_str()))
    }
}

/// `<event>.<language>` of a known event and language.
fn is_template_name(name: &str) -> bool {
    name.split_once('.')
        .is_some_and(|(event, lang)| Event::parse(event).is_some() && LANGUAGES.contains(&lang))
}
