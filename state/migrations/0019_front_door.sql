-- The front door: API tokens may expire (`dealflow token create --expires-in 30d`; an
-- expired token is refused like a revoked one, and its inbox sessions end with it), and
-- failed authentications are counted per client address in a fixed window (every API
-- process on this database shares the count): past the limit, the address is answered
-- 429 until `window_end`.
ALTER TABLE dealflow_api_tokens ADD COLUMN expires_at timestamptz;
CREATE TABLE dealflow_auth_failures (
    client      text PRIMARY KEY,
    failures    integer NOT NULL,
    window_end  timestamptz NOT NULL
);
CREATE INDEX dealflow_auth_failures_window_idx ON dealflow_auth_failures (window_end);
