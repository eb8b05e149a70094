"""Test support shared by every part's tests: real `reelsync server` processes and fresh
PostgreSQL databases. See /work/notes/INTERFACES.md ("tests/support")."""
