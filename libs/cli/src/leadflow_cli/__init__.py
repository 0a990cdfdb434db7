"""leadflow: the admin command line, a client of the LeadFlow services' admin HTTP APIs."""
