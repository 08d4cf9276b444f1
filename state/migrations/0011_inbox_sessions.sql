-- Sessions of the reviewers' inbox: the cookie holds a random id, stored hashed;
-- each session has its own CSRF token; revoking the API token ends its sessions.
CREATE TABLE dealflow_inbox_sessions (
    id_hash     text PRIMARY KEY,
    token_name  text NOT NULL REFERENCES dealflow_api_tokens (name) ON DELETE CASCADE,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL
);
