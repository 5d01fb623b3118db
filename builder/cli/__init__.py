"""Every command line: he-build and its subcommands, he-launch; nothing else imports this."""
