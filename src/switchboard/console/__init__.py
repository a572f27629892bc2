"""The operations console: server-rendered pages at ``/console`` over connections, jobs,
webhooks, the event feed, tasks and reports, users and contacts (see ``endpoints``)."""
