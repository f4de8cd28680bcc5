"""Local simulators of the Salesforce and Intercom REST APIs, speaking their real shapes."""
