#!/usr/bin/env bash
# The all-C baseline the forwarder is measured against: list the prefix with one curl, then
# for each object "curl it to a file + unzip -p (-P password) into one TCP connection".
# No syslog header, no framing, no checkpoint: the events go out as the lines they are.
#
# Requests are signed (SigV4, curl's --aws-sigv4) as any real S3 client's are.
#
# usage: baseline.sh ENDPOINT BUCKET PREFIX SINK_PORT WORK_DIR
#        (password in $ZIP_PASSWORD, credentials in $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY;
#        DOWNLOAD_ONLY=1 fetches the objects and sends nothing; GZ_OBJECTS=1 reads gzip objects,
#        as Cato's Events Integration writes them, with gzip -dc instead of unzip)
set -euo pipefail
endpoint=$1 bucket=$2 prefix=$3 port=$4 work=$5
s3=(curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")

exec 3<>"/dev/tcp/127.0.0.1/$port"
# One page of ListObjectsV2 (up to 1,000 keys) is enough for the benchmark's files; keys
# are CATO + 20 zero-padded digits, so S3's lexical order is their numeric order.
keys=$("${s3[@]}" "$endpoint/$bucket?list-type=2&prefix=$prefix" \
    | grep -o '<Key>[^<]*</Key>' | sed -e 's/<Key>//' -e 's/<\/Key>//')
for key in $keys; do
    "${s3[@]}" -o "$work/object.zip" "$endpoint/$bucket/$key"
    if [[ -n "${DOWNLOAD_ONLY:-}" ]]; then  # to time the S3 endpoint alone
        continue
    elif [[ -n "${GZ_OBJECTS:-}" ]]; then
        gzip -dc "$work/object.zip" >&3
    elif [[ -n "${ZIP_PASSWORD:-}" ]]; then
        unzip -qq -P "$ZIP_PASSWORD" -p "$work/object.zip" >&3
    else
        unzip -qq -p "$work/object.zip" >&3
    fi
done
exec 3>&-
