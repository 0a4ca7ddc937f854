//! Loading a batch's [`Snapshot`]: one `IN (…)` query per kind of fact,
//! whatever the number of mails.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};

use super::{FOLLOW_UP_DEPTH, KeyHolder, RATE_WINDOW_SECS, Snapshot, TicketRecord, bounced_addresses, returned_id};
use crate::directory::{ContactGroup, Service, SubscriptionTarget, domain_candidates, domain_of, mailbox_of};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::notify::Recipient;
use crate::notify::audience::Subscription;
use crate::store::directory::{CONTACT_COLS, contact_from_row};
use crate::store::flag::flag;
use crate::store::sql::{Placeholders, Sql, fetch_in, fetch_rows_in};
use crate::tickets::TicketStatus;
use crate::tickets::plan::REPLY_WINDOW_SECS;
use crate::tickets::tag::TagFormat;

impl Snapshot {
    /// Loads everything the batch's mails may need: `keys` are the keys of
    /// every mail of the batch (parsed or not), `msgs` the parsed ones.
    pub async fn load(
        conn: &mut AnyConnection,
        keys: &[&str],
        msgs: &[&Message],
        tag: &TagFormat,
        since: i64,
    ) -> Result<Snapshot> {
        let mut s = Snapshot::default();
        s.extend(conn, keys, msgs, tag, since).await?;
        Ok(s)
    }

    /// Adds what the batch's mails may need and the snapshot does not hold
    /// yet, leaving what it holds as it is.
    ///
    /// A snapshot carried over from the previous batch holds that batch's
    /// own effects, not yet committed; what it does not hold that batch
    /// did not touch, so the store's last committed state is right for it.
    /// `since` must not be earlier than any `since` the snapshot was
    /// loaded with: the time windows loaded before must cover this batch's.
    pub async fn extend(
        &mut self,
        conn: &mut AnyConnection,
        keys: &[&str],
        msgs: &[&Message],
        tag: &TagFormat,
        since: i64,
    ) -> Result<()> {
        let s = self;
        let keys: Vec<String> = keys
            .iter()
            .filter(|k| !s.known_keys.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        s.load_keys(conn, keys).await?;
        // A mail reusing a Message-ID another sender's mail holds is kept
        // under its bytes' hash: whether that is known too (a re-fetch).
        let rekeyed: Vec<String> = msgs
            .iter()
            .filter_map(|m| s.reused_key(m))
            .filter(|k| !s.known_keys.contains_key(k))
            .collect();
        s.load_keys(conn, rekeyed).await?;
        if msgs.is_empty() {
            return Ok(());
        }

        let emails: HashSet<&str> = msgs.iter().map(|m| m.from.address.as_str()).collect();
        // Delivery reports name the contacts whose mailboxes failed.
        let failed: HashSet<&str> = msgs
            .iter()
            .flat_map(|m| bounced_addresses(m))
            .flat_map(|(a, o)| std::iter::once(a).chain(o))
            .filter(|a| !a.is_empty())
            .collect();
        // The mailbox behind a sub-address (`ign+x@` → `ign@`): its
        // contact's ignore flag holds for the sub-address too.
        let mailboxes: Vec<String> = emails
            .iter()
            .filter_map(|e| match mailbox_of(e) {
                std::borrow::Cow::Owned(m) => Some(m),
                std::borrow::Cow::Borrowed(_) => None,
            })
            .collect();
        let mut wanted: HashSet<&str> = emails.union(&failed).copied().collect();
        wanted.extend(mailboxes.iter().map(String::as_str));
        let contacts = wanted
            .into_iter()
            .filter(|e| !s.contacts.contains_key(*e))
            .map(str::to_string)
            .collect();
        s.load_contacts(conn, contacts).await?;
        let window = since - RATE_WINDOW_SECS;
        let senders: HashSet<&str> = emails
            .iter()
            .copied()
            .filter(|e| !s.senders_loaded.contains(*e))
            .collect();
        let opened = senders_times(
            conn,
            "SELECT from_addr, received_at FROM messages WHERE outcome = 'new_ticket' AND received_at >= ",
            " AND from_addr",
            window,
            &senders,
        )
        .await?;
        // Refusals that went out, not refused mails: one whose refusal was
        // held back must not hold back the next hour's.
        let refused = senders_times(
            conn,
            "SELECT to_addr, created_at FROM outbox WHERE ticket IS NULL AND event = 'refusal' AND created_at >= ",
            " AND to_addr",
            window,
            &senders,
        )
        .await?;
        for (sender, times) in opened {
            s.opened.entry(sender).or_default().extend(times);
        }
        for (sender, times) in refused {
            s.refused.entry(sender).or_default().extend(times);
        }
        s.senders_loaded.extend(senders.into_iter().map(str::to_string));

        let domains: HashSet<String> = msgs
            .iter()
            .flat_map(|m| {
                domain_candidates(domain_of(&m.from.address))
                    .into_iter()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|d| !s.domain_accounts.contains_key(d))
            .collect();
        if !domains.is_empty() {
            let found: Vec<(String, i64)> = fetch_in(conn, domains.into_iter().collect(), |style, slice| {
                let mut qb = Sql::styled(style, "SELECT domain, account_id FROM account_domains WHERE domain");
                qb.push_in(slice);
                qb
            })
            .await?;
            s.domain_accounts.extend(found);
        }

        let refs: HashSet<String> = msgs
            .iter()
            .flat_map(|m| {
                m.in_reply_to
                    .iter()
                    .chain(m.references.iter())
                    .chain(returned_id(m))
                    .filter(|id| !s.thread_ids.contains_key(*id))
                    .cloned()
            })
            .collect();
        let found: Vec<(String, i64)> = fetch_in(conn, refs.into_iter().collect(), |style, slice: Vec<String>| {
            let mut qb = Sql::styled(
                style,
                "SELECT message_id, ticket FROM messages WHERE ticket IS NOT NULL AND message_id",
            );
            qb.push_in(slice.iter().cloned());
            qb.push(" UNION ALL SELECT message_id, ticket FROM outbox WHERE ticket IS NOT NULL AND message_id");
            qb.push_in(slice);
            qb
        })
        .await?;
        for (id, ticket) in found {
            s.thread_ids.entry(id).or_insert(ticket);
        }

        let mut numbers: HashSet<i64> = s.thread_ids.values().copied().collect();
        numbers.extend(msgs.iter().filter_map(|m| tag.find(&m.subject)));
        // Tickets held already have their recent mail (the batch that
        // loaded or opened them added every mail since).
        let held: HashSet<i64> = s.tickets.keys().copied().collect();
        s.load_tickets(conn, numbers.into_iter().collect()).await?;
        s.load_follow_ups(conn).await?;
        let added: Vec<i64> = s.tickets.keys().copied().filter(|n| !held.contains(n)).collect();
        for (ticket, mail) in ticket_mail(conn, added, since - REPLY_WINDOW_SECS).await? {
            s.ticket_mail.entry(ticket).or_default().extend(mail);
        }

        let mut accounts: HashSet<i64> = s.contacts.values().filter_map(|c| c.account_id).collect();
        accounts.extend(s.domain_accounts.values().copied());
        accounts.extend(s.tickets.values().filter_map(|t| t.account_id));
        s.load_accounts(conn, accounts.into_iter().collect()).await?;
        Ok(())
    }

    /// Adds contacts by email.
    async fn load_contacts(&mut self, conn: &mut AnyConnection, emails: Vec<String>) -> Result<()> {
        if emails.is_empty() {
            return Ok(());
        }
        let rows = fetch_rows_in(conn, emails, |style, slice| {
            let mut qb = Sql::styled(style, format!("SELECT {CONTACT_COLS} FROM contacts c WHERE c.email"));
            qb.push_in(slice);
            qb
        })
        .await?;
        for row in rows {
            let c = contact_from_row(&row)?;
            self.contacts.insert(c.email.clone(), c);
        }
        Ok(())
    }

    /// Which of `keys` the store holds a mail under, with its sender and date.
    async fn load_keys(&mut self, conn: &mut AnyConnection, keys: Vec<String>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let known: Vec<(String, Option<String>, Option<i64>, i64)> = fetch_in(conn, keys, |style, slice| {
            let mut qb = Sql::styled(
                style,
                "SELECT message_key, from_addr, sent_date, received_at FROM messages WHERE outcome <> 'duplicate' AND message_key",
            );
            qb.push_in(slice);
            qb
        })
        .await?;
        self.known_keys.extend(
            known
                .into_iter()
                .map(|(key, from, date, at)| (key, KeyHolder::new(from.unwrap_or_default(), date, at))),
        );
        Ok(())
    }

    /// Adds tickets by number, with requesters and participants.
    pub async fn load_tickets(&mut self, conn: &mut AnyConnection, numbers: Vec<i64>) -> Result<()> {
        let numbers: Vec<i64> = numbers.into_iter().filter(|n| !self.tickets.contains_key(n)).collect();
        if numbers.is_empty() {
            return Ok(());
        }
        let rows = fetch_rows_in(conn, numbers, |style, slice| {
            let mut qb = Sql::styled(style, format!(
                "SELECT t.number, t.subject, t.status, t.requester_id, t.account_id, t.service_id, t.escalation_level,
                        t.related_ticket, t.root_message_id, t.created_at, t.updated_at, t.closed_at, t.approval_pending,
                        (SELECT string_agg(CAST(contact_id AS TEXT), ' ') FROM ticket_participants p WHERE p.ticket = t.number) AS participants,
                        {RECIPIENT_COLS}, c.account_id AS requester_account,
                        (SELECT language FROM accounts WHERE id = t.account_id) AS ticket_language
                 FROM tickets t JOIN contacts c ON c.id = t.requester_id WHERE t.number"
            ));
            qb.push_in(slice);
            qb
        })
        .await?;
        for r in rows {
            let status: String = r.try_get("status")?;
            let level: i64 = r.try_get("escalation_level")?;
            let participants: Option<String> = r.try_get("participants")?;
            // As when the ticket opened (see `Batch::requester`): the
            // ticket's account's language when the requester has none.
            let mut requester = recipient_from_row(&r)?;
            if requester.language.is_none() {
                requester.language = r.try_get("ticket_language")?;
            }
            let t = TicketRecord {
                number: r.try_get("number")?,
                subject: r.try_get("subject")?,
                status: status.parse().map_err(Error::Usage)?,
                requester_id: r.try_get("requester_id")?,
                account_id: r.try_get("account_id")?,
                service_id: r.try_get("service_id")?,
                escalation_level: level as u8,
                related: r.try_get("related_ticket")?,
                root_message_id: r.try_get("root_message_id")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                closed_at: r.try_get("closed_at")?,
                approval_pending: flag(&r, "approval_pending")?,
                requester,
                requester_account: r.try_get("requester_account")?,
                participants: participants
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect(),
            };
            self.tickets.insert(t.number, t);
        }
        Ok(())
    }

    /// Adds, for every closed ticket loaded, its newest follow-up (with
    /// the ticket itself), and so on down the chain while a follow-up is
    /// closed too (it may have a follow-up of its own), so a late reply to
    /// the oldest thread finds the newest ticket.
    async fn load_follow_ups(&mut self, conn: &mut AnyConnection) -> Result<()> {
        let mut closed: Vec<i64> = self
            .tickets
            .values()
            .filter(|t| t.status == TicketStatus::Closed)
            .map(|t| t.number)
            .collect();
        for _ in 0..FOLLOW_UP_DEPTH {
            closed.retain(|n| !self.follow_ups.contains_key(n));
            if closed.is_empty() {
                break;
            }
            let found: Vec<(i64, i64)> = fetch_in(conn, closed, |style, slice| {
                let mut qb = Sql::styled(
                    style,
                    "SELECT related_ticket, MAX(number) FROM tickets WHERE related_ticket",
                );
                qb.push_in(slice);
                qb.push(" GROUP BY related_ticket");
                qb
            })
            .await?;
            let numbers: Vec<i64> = found.iter().map(|(_, n)| *n).collect();
            self.follow_ups.extend(found);
            self.load_tickets(conn, numbers.clone()).await?;
            closed = numbers
                .into_iter()
                .filter(|n| self.tickets.get(n).is_some_and(|t| t.status == TicketStatus::Closed))
                .collect();
        }
        Ok(())
    }
    /// Adds accounts with their services, subscriptions and primary contacts.
    pub async fn load_accounts(&mut self, conn: &mut AnyConnection, ids: Vec<i64>) -> Result<()> {
        let ids: Vec<i64> = ids.into_iter().filter(|a| !self.accounts.contains_key(a)).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let by_account = |head: String, tail: &'static str| {
            move |style: Placeholders, slice: Vec<i64>| {
                let mut qb = Sql::styled(style, head.clone());
                qb.push_in(slice);
                qb.push(tail);
                qb
            }
        };
        let rows = fetch_rows_in(
            conn,
            ids.clone(),
            by_account(
                format!(
                    "SELECT {} FROM accounts a WHERE a.id",
                    crate::store::directory::ACCOUNT_COLS
                ),
                "",
            ),
        )
        .await?;
        for r in rows {
            let a = crate::store::directory::account_from_row(&r)?;
            self.services.entry(a.id).or_default();
            self.subscriptions.entry(a.id).or_default();
            self.primaries.entry(a.id).or_default();
            self.accounts.insert(a.id, a);
        }

        let rows = fetch_rows_in(
            conn,
            ids.clone(),
            by_account(
                "SELECT id, service_id, account_id, name FROM services WHERE account_id".into(),
                " ORDER BY id",
            ),
        )
        .await?;
        for r in rows {
            let s = Service {
                id: r.try_get("id")?,
                service_id: r.try_get("service_id")?,
                account_id: r.try_get("account_id")?,
                name: r.try_get("name")?,
            };
            self.services.entry(s.account_id).or_default().push(s);
        }

        let rows = fetch_rows_in(
            conn,
            ids.clone(),
            by_account(
                format!(
                    "SELECT {RECIPIENT_COLS}, s.contact_group, s.account_id AS t_account, s.service_id AS t_service,
                            s.billing_account_id AS t_billing, COALESCE(s.account_id, sv.account_id, b.account_id) AS owner, s.level
                     FROM subscriptions s JOIN contacts c ON c.id = s.contact_id
                     LEFT JOIN services sv ON sv.id = s.service_id
                     LEFT JOIN billing_accounts b ON b.id = s.billing_account_id
                     WHERE COALESCE(s.account_id, sv.account_id, b.account_id)"
                ),
                // A row left stale by a move (see prune_subscriptions) never
                // mails one customer's news to another's staff.
                " AND c.account_id = COALESCE(s.account_id, sv.account_id, b.account_id) ORDER BY s.id",
            ),
        )
        .await?;
        for r in rows {
            let owner: i64 = r.try_get("owner")?;
            let group: String = r.try_get("contact_group")?;
            let t_account: Option<i64> = r.try_get("t_account")?;
            let t_service: Option<i64> = r.try_get("t_service")?;
            let t_billing: Option<i64> = r.try_get("t_billing")?;
            let target = match (t_account, t_service, t_billing) {
                (Some(a), _, _) => SubscriptionTarget::Account(a),
                (_, Some(s), _) => SubscriptionTarget::Service(s),
                (_, _, Some(b)) => SubscriptionTarget::Billing {
                    billing: b,
                    account: owner,
                },
                _ => return Err(Error::Directory("subscription without a target".into())),
            };
            let level: Option<i64> = r.try_get("level")?;
            self.subscriptions.entry(owner).or_default().push(Subscription {
                account: owner,
                recipient: recipient_from_row(&r)?,
                group: group.parse::<ContactGroup>().map_err(Error::Directory)?,
                target,
                level: level.map(|l| l as u8),
            });
        }

        let rows = fetch_rows_in(
            conn,
            ids,
            by_account(
                format!(
                    "SELECT {RECIPIENT_COLS}, c.account_id AS owner FROM contacts c WHERE c.is_primary AND c.account_id"
                ),
                " ORDER BY c.id",
            ),
        )
        .await?;
        for r in rows {
            let owner: i64 = r.try_get("owner")?;
            self.primaries.entry(owner).or_default().push(recipient_from_row(&r)?);
        }
        Ok(())
    }
}

/// Columns of a contact as a notification recipient (language falls back
/// to the account's).
const RECIPIENT_COLS: &str = "c.id AS contact_id, c.email, c.first_name, c.last_name, \
    COALESCE(c.language, (SELECT language FROM accounts WHERE id = c.account_id)) AS language, c.ignore, c.undeliverable";

fn recipient_from_row(r: &sqlx::any::AnyRow) -> Result<Recipient> {
    Ok(Recipient {
        contact_id: Some(r.try_get("contact_id")?),
        email: r.try_get("email")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        language: r.try_get("language")?,
        ignore: flag(r, "ignore")?,
        undeliverable: flag(r, "undeliverable")?,
    })
}

/// `(address, time)` rows of `select` (which ends in `time >= `) from
/// `since` on, for the addresses in `emails` (`address_column` names the
/// column for the IN list), grouped by address. The rate limit's and the
/// refusal limit's lookups: each an index range per address.
async fn senders_times(
    conn: &mut AnyConnection,
    select: &str,
    address_column: &str,
    since: i64,
    emails: &HashSet<&str>,
) -> Result<HashMap<String, Vec<i64>>> {
    let rows: Vec<(String, i64)> = fetch_in(conn, emails.iter().map(|e| e.to_string()).collect(), |style, slice| {
        let mut qb = Sql::styled(style, select);
        qb.push_bind(since).push(address_column);
        qb.push_in(slice);
        qb
    })
    .await?;
    let mut times: HashMap<String, Vec<i64>> = HashMap::new();
    for (from, at) in rows {
        times.entry(from).or_default().push(at);
    }
    Ok(times)
}

/// Mails on `tickets` received since `since`: sender and time, by ticket.
async fn ticket_mail(
    conn: &mut AnyConnection,
    tickets: Vec<i64>,
    since: i64,
) -> Result<HashMap<i64, Vec<(String, i64)>>> {
    let rows: Vec<(i64, Option<String>, i64)> = fetch_in(conn, tickets, |style, slice| {
        let mut qb = Sql::styled(
            style,
            "SELECT ticket, from_addr, received_at FROM messages WHERE received_at >= ",
        );
        qb.push_bind(since).push(" AND ticket");
        qb.push_in(slice);
        qb
    })
    .await?;
    let mut mail: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
    for (ticket, from, at) in rows {
        mail.entry(ticket).or_default().push((from.unwrap_or_default(), at));
    }
    Ok(mail)
}

/// Has a mail with this key been processed (not counting duplicate rows)?
pub async fn key_is_known(conn: &mut AnyConnection, key: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM messages WHERE message_key = $1 AND outcome <> 'duplicate'")
            .bind(key)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}
