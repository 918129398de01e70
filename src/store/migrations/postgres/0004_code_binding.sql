-- OAuth 2.0 for the hosted page: a code remembers the redirect URI it was sent to (RFC 6749
-- 4.1.3) and its PKCE challenge (RFC 7636); a client without a secret is a public client.
ALTER TABLE codes ADD COLUMN redirect_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE codes ADD COLUMN code_challenge TEXT NOT NULL DEFAULT '';
