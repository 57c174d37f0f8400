"""The harness the tests and the bench share: real servers as local processes (services.py), commands
in the Molecule containers (in_container.py), steady load (load.py, loadgen.py), the power-cut filesystem
(lazyfs.py), certificates, playbook runs, and the result tables the tests write (report.py)."""
