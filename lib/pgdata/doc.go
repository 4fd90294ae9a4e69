// Package pgdata prepares and changes a PostgreSQL data directory the way a
// node's configuration says: the configuration files pg-ha owns
// (postgresql.conf, pg_hba.conf, standby.signal), initdb, a clone of the
// leader with pg_basebackup, and pg_rewind. It also derives the connection
// settings the daemons use from the node's configuration.
//
// Every PostgreSQL binary runs as the data directory's owner; passwords are
// handed over in a pgpass file, never in arguments.
package pgdata
