//! SQLite store: journal of engine events, summaries and stops, engine snapshots, the outbox; WAL, migrations, bounded size.
