"""Run plumbing shared by every driver: options, logging, errors, run folders."""
