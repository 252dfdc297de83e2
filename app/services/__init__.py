"""Business rules, one module per capability. Views, APIs, jobs and CLI call these."""
