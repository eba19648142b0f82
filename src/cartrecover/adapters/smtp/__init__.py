"""The email channel over SMTP: STARTTLS or implicit TLS, AUTH, multipart text + HTML, optional DKIM signing."""
