"""What a run leaves for people: tables, labels, figures and the HTML report."""
