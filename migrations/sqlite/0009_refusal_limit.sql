-- A sender who may not open tickets (intake = 'primary_only') is told so
-- at most once an hour: the refusal of the next mail is skipped while one
-- went out within the hour. Without it, an auto-responder that carries
-- none of the usual markers and answers every refusal would ping-pong
-- with mailroom forever (a refusal has no ticket, so the per-ticket loop
-- guard does not see it). This finds a sender's refused mails of the hour;
-- few mails are refused, so the index stays small.
CREATE INDEX messages_sender_refused ON messages(from_addr, received_at) WHERE reason = 'not_authorised';
