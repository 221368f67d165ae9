import GRDB

/// The versioned schema of the SQLite store. Migrations are only ever appended: a database carries the
/// identifiers of the migrations applied to it, and a binary that finds one it does not know refuses to open it.
enum StorageSchema {
    /// The migration identifiers in order; the last one is the current schema version.
    static let versions = ["v1", "v2", "v3", "v4", "v5"]

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()

        // v1: the first schema. Message bodies live once in `message`; `delivery` rows reference them.
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE session (
                    client_id TEXT PRIMARY KEY NOT NULL,
                    protocol_version INTEGER NOT NULL,
                    expiry_interval INTEGER NOT NULL,
                    will_topic TEXT,
                    will_payload BLOB,
                    will_qos INTEGER,
                    will_retain INTEGER,
                    will_properties BLOB
                ) WITHOUT ROWID;
                CREATE TABLE subscription (
                    client_id TEXT NOT NULL,
                    filter TEXT NOT NULL,
                    qos INTEGER NOT NULL,
                    no_local INTEGER NOT NULL,
                    retain_as_published INTEGER NOT NULL,
                    retain_handling INTEGER NOT NULL,
                    subscription_identifier INTEGER,
                    PRIMARY KEY (client_id, filter)
                ) WITHOUT ROWID;
                CREATE TABLE message (
                    id INTEGER PRIMARY KEY,
                    topic TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    qos INTEGER NOT NULL,
                    retain INTEGER NOT NULL,
                    properties BLOB,
                    expires_at_ms INTEGER,
                    publisher TEXT
                );
                CREATE TABLE delivery (
                    client_id TEXT NOT NULL,
                    sequence INTEGER NOT NULL,
                    message_id INTEGER NOT NULL,
                    qos INTEGER NOT NULL,
                    retain INTEGER NOT NULL,
                    subscription_identifiers TEXT NOT NULL,
                    packet_id INTEGER,
                    state INTEGER NOT NULL,
                    PRIMARY KEY (client_id, sequence)
                ) WITHOUT ROWID;
                CREATE TABLE inbound_qos2 (
                    client_id TEXT NOT NULL,
                    packet_id INTEGER NOT NULL,
                    PRIMARY KEY (client_id, packet_id)
                ) WITHOUT ROWID;
                CREATE TABLE retained (
                    topic TEXT PRIMARY KEY NOT NULL,
                    payload BLOB NOT NULL,
                    qos INTEGER NOT NULL,
                    properties BLOB,
                    expires_at_ms INTEGER,
                    publisher TEXT
                );
                """)
        }

        // v2: store metadata (creation time, schema written by which version) and an index to find the
        // deliveries of a message.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                CREATE TABLE store_meta (
                    key TEXT PRIMARY KEY NOT NULL,
                    value TEXT NOT NULL
                ) WITHOUT ROWID;
                INSERT INTO store_meta (key, value) VALUES ('created_at_ms', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
                CREATE INDEX delivery_message ON delivery (message_id);
                """)
        }
        // v3: when a session's last connection closed (Unix milliseconds; NULL while connected), so that its
        // expiry interval keeps counting across restarts.
        migrator.registerMigration("v3") { db in
            try db.execute(sql: "ALTER TABLE session ADD COLUMN disconnected_at_ms INTEGER")
        }
        // v4: the shared subscription that chose a session for a delivery, so that the message goes to another
        // member of the group if the session ends, also after a restart.
        migrator.registerMigration("v4") { db in
            try db.execute(sql: "ALTER TABLE delivery ADD COLUMN shared_subscription TEXT")
        }
        // v5: the user who opened the session (owner_known 0: not known, for sessions stored before), so that
        // another user cannot take it over after a restart either.
        migrator.registerMigration("v5") { db in
            try db.execute(sql: "ALTER TABLE session ADD COLUMN owner TEXT")
            try db.execute(sql: "ALTER TABLE session ADD COLUMN owner_known INTEGER NOT NULL DEFAULT 0")
        }
        return migrator
    }

    /// Data tables, in an order that is valid for import.
    static let tables = ["session", "subscription", "message", "delivery", "inbound_qos2", "retained"]
}
