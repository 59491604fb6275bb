"""poolserver behind real reverse proxies (nginx, HAProxy): the configurations of docs/deploy.md."""
