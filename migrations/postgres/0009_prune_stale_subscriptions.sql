-- Subscriptions whose target (account, service or billing account) is no
-- longer in the contact's account. Until now a directory change that moved
-- a contact, service or billing account to another customer left them in
-- place, so one customer's notifications could reach another's staff and
-- `directory export` wrote a file that `directory import` refused. Every
-- directory change now removes such rows in its own transaction; this
-- removes the ones left by earlier versions.
DELETE FROM subscriptions WHERE id IN (
    SELECT s.id
    FROM subscriptions s
    JOIN contacts c ON c.id = s.contact_id
    LEFT JOIN services sv ON sv.id = s.service_id
    LEFT JOIN billing_accounts b ON b.id = s.billing_account_id
    WHERE c.account_id IS NULL
       OR c.account_id <> COALESCE(s.account_id, sv.account_id, b.account_id)
);
