"""Reference implementations of systems a company has and this project cannot: an agent fleet, a chat sink,
and the worked example's data."""
