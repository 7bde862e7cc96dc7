"""Tests of flagproxy_django; run them with runtests.py."""
