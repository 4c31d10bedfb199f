"""The store schema: one ordered list of migrations, the single source of schema truth for
every SQL backend.

``MIGRATIONS[i]`` takes a store from version ``i`` to ``i + 1``; the version lives in the
table ``retap_schema`` (SQLite stores made before it kept it in ``PRAGMA user_version``,
which SQLite stores still mirror). A store whose version is above ``len(MIGRATIONS)`` was
written by a newer retap and is refused. Statements are written once, with ``{blob}``,
``{real}`` and ``{clustered}`` for what a dialect spells its own way; whole numbers are
BIGINT everywhere (SQLite reads any ``INT`` type as its one integer type).

Keys are chosen so one dispatch's commit dirties few pages: the queue is ordered by
position (its head and tail stay on a page or two); dispatches are read in seq order
by sorting, not through an index every commit would have to write. A result or input
is referred to by the digest of its row in "values" (stored once), or, when its JSON is
at most 64 bytes, inline as ``=<json>``: smaller than a digest, and one page less to
write per commit. Every table but "values" (whose key is the digest of its data),
"outputs" (an index a checksum would not protect: it only ever keeps files alone) and
"versions" (advisory: checked against the dispatches before it is reported) has a ``crc``
column: see ``retap.store.rows``.
"""

from __future__ import annotations

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION"]

APPLICATION_ID = 0x72746170  # "rtap": marks a SQLite file as a retap store

MIGRATIONS: list[str] = [
    # 1: runs, dispatches (the audit), values by digest, the queue and join state; the
    #    memo of results reusable across runs, and the digests of files by their stat.
    """
    CREATE TABLE runs (
        run TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        created {real} NOT NULL,
        updated {real} NOT NULL,
        codec TEXT NOT NULL,
        spec {blob} NOT NULL,
        owner_host TEXT,
        owner_pid BIGINT,
        owner_started {real},
        crc BIGINT NOT NULL
    );
    CREATE TABLE "values" (
        digest TEXT PRIMARY KEY,
        codec TEXT NOT NULL,
        data {blob} NOT NULL
    ){clustered};
    CREATE TABLE dispatches (
        run TEXT NOT NULL,
        id TEXT NOT NULL,
        node TEXT NOT NULL,
        task TEXT NOT NULL,
        sources TEXT NOT NULL,
        inputs TEXT,
        status TEXT NOT NULL,
        result TEXT,
        error TEXT,
        attempts BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        started {real},
        finished {real},
        code_version TEXT,
        reused TEXT,
        outputs TEXT,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, id)
    ){clustered};
    CREATE TABLE queue (
        run TEXT NOT NULL,
        pos BIGINT NOT NULL,
        id TEXT NOT NULL,
        node TEXT NOT NULL,
        sources TEXT NOT NULL,
        inputs TEXT NOT NULL,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, pos)
    ){clustered};
    CREATE TABLE join_entries (
        run TEXT NOT NULL,
        join_id TEXT NOT NULL,
        slot BIGINT NOT NULL,
        audit TEXT NOT NULL,
        seq BIGINT NOT NULL,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, join_id, slot, audit)
    ){clustered};
    CREATE TABLE join_counts (
        run TEXT NOT NULL,
        join_id TEXT NOT NULL,
        count BIGINT NOT NULL,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, join_id)
    ){clustered};
    CREATE TABLE memo (
        task TEXT NOT NULL,
        key TEXT NOT NULL,
        run TEXT NOT NULL,
        dispatch TEXT NOT NULL,
        result TEXT NOT NULL,
        outputs TEXT NOT NULL,
        facts TEXT NOT NULL,
        created {real} NOT NULL,
        crc BIGINT NOT NULL,
        PRIMARY KEY (task, key)
    ){clustered};
    CREATE INDEX memo_by_dispatch ON memo (task, dispatch);
    CREATE TABLE file_digests (
        path TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL,
        inode BIGINT NOT NULL,
        digest TEXT NOT NULL,
        crc BIGINT NOT NULL
    ){clustered};
    """,
    # 2: the files committed dispatches wrote, by path and content digest, so a roll-back
    #    of an abandoned journal can leave alone a file that holds a recorded output.
    """
    CREATE TABLE outputs (
        path TEXT NOT NULL,
        digest TEXT NOT NULL,
        run TEXT NOT NULL,
        dispatch TEXT NOT NULL,
        PRIMARY KEY (path, digest, run, dispatch)
    ){clustered};
    """,
    # 3: the schema version in a table of its own, the same on every backend.
    """
    CREATE TABLE retap_schema (
        version BIGINT NOT NULL
    );
    """,
    # 4: a run's lease: the token of the coordinator that holds it, renewed while it runs;
    #    every commit of the run checks the token (outside the row's checksum: a crafted
    #    lease can at most let a run be taken over, which --take-over does anyway).
    """
    ALTER TABLE runs ADD COLUMN lease_token TEXT;
    ALTER TABLE runs ADD COLUMN lease_expires {real};
    """,
    # 5: the history a dispatch's row does not hold. A dispatch's row is its latest
    #    attempt; every earlier one (a retry, a failure a resume ran again, an attempt
    #    lost with its coordinator) is kept in "attempts" before the row is written over.
    #    "events" is the run's timeline: created, each resume and replay (a session;
    #    attempts name the session they belong to), --set changes, code changes, the end.
    #    Both are keyed so a commit appends at the end of the run's range.
    """
    CREATE TABLE attempts (
        run TEXT NOT NULL,
        dispatch TEXT NOT NULL,
        n BIGINT NOT NULL,
        session BIGINT NOT NULL,
        status TEXT NOT NULL,
        started {real},
        finished {real},
        error TEXT,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, dispatch, n)
    ){clustered};
    CREATE TABLE events (
        run TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at {real} NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, seq)
    ){clustered};
    """,
    # 6: what each attempt printed and logged ("text", its middle cut when over the limit:
    #    "dropped" characters), written with the commit that records the attempt and keyed
    #    by that commit's seq, so a commit appends and ``retap logs --follow`` reads on;
    #    and the process (host, pid) that ran each attempt made outside its coordinator
    #    (any other ran in the coordinator its session's event names).
    """
    CREATE TABLE logs (
        run TEXT NOT NULL,
        seq BIGINT NOT NULL,
        dispatch TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        text TEXT NOT NULL,
        dropped BIGINT NOT NULL,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, seq, dispatch, attempt)
    ){clustered};
    CREATE TABLE workers (
        run TEXT NOT NULL,
        dispatch TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        crc BIGINT NOT NULL,
        PRIMARY KEY (run, dispatch, attempt)
    ){clustered};
    """,
    # 7: the dispatches of a run that are not done (running, failed, interrupted), which a
    #    resume reads: a partial index holds them and nothing else, so a done dispatch's
    #    commit writes no index entry and the resume reads O(pending) rows, not the history.
    """
    CREATE INDEX dispatches_not_done ON dispatches (run, status) WHERE status != 'done';
    """,
    # 8: what a resume reads instead of the whole history. "versions": each (node, task,
    #    code version) a done dispatch of the run was recorded with, written the first time
    #    a session commits one (a later re-run may leave an entry no row holds any more:
    #    a reader asks the dispatches before it reports one). "counters": a bound above
    #    every dispatch ``seq`` the run has used, reserved a block ahead and set exact when
    #    a session ends; a run without one (recorded before it) is read in full once.
    """
    CREATE TABLE versions (
        run TEXT NOT NULL,
        node TEXT NOT NULL,
        task TEXT NOT NULL,
        code_version TEXT NOT NULL,
        PRIMARY KEY (run, node, task, code_version)
    ){clustered};
    INSERT INTO versions (run, node, task, code_version)
        SELECT DISTINCT run, node, task, coalesce(code_version, '') FROM dispatches
        WHERE status = 'done';
    CREATE TABLE counters (
        run TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        crc BIGINT NOT NULL
    ){clustered};
    """,
    # 9: no table changes: rows may now carry the marshalled form of their checksum (see
    #    ``retap.store.rows``), which an older retap would take for damage; the version
    #    makes it refuse the store as newer instead.
    "",
]

SCHEMA_VERSION = len(MIGRATIONS)
