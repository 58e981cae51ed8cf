"""The Faust worker: agents that route changes and apply commands to the CRM."""
