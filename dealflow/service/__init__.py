"""dealflow as a service: an HTTP API and procrastinate workers on the same Postgres."""
