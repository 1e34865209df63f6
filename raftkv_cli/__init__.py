"""raftkv's programs: the ``raftkvd`` daemon and the ``raftkv`` command-line client."""
