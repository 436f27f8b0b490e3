# The image `rollout relay` runs from on Kubernetes stacks (rollout:rollback.relay.image).
# Built and pushed by .github/workflows/relay-image.yml, which prints the digest to pin.
#
#   docker build -t rollout-relay .
#   docker run --rm -e ROLLOUT_RELAY_TOKEN -e GITHUB_TOKEN -p 8080:8080 rollout-relay \
#     --project /app relay --stack staging --listen 0.0.0.0:8080 \
#     --forge-url https://api.github.com --repository OWNER/NAME
#
# The project (Pulumi.yaml and stacks/) is copied to /app: `relay --stack S` checks
# that stack exists. The relay needs no write access: the Deployment mounts the root
# file system read-only and runs as user 10001.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rollout/ rollout/
COPY components/ components/
COPY alerts/ alerts/
COPY dashboards/ dashboards/
COPY policies/ policies/
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM ${PYTHON_IMAGE}
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /venv /venv
WORKDIR /app
COPY Pulumi.yaml ./
COPY stacks/ stacks/
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["rollout"]
CMD ["relay", "--help"]
