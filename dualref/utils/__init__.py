"""Small shared utilities: errors, atomic I/O, logging, devices, seeding."""
