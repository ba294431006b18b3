"""The clinical viewer: a static page at `/` that is a client of the public JSON API only."""
