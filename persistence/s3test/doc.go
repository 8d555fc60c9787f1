// Package s3test starts a real S3-compatible server, SeaweedFS, for tests: a `weed server`
// process on free loopback ports in a temporary directory, stopped when the test ends.
//
//	srv := s3test.Start(t)            // skips (or, in CI, fails) if weed is not installed
//	bucket := srv.Bucket(t, "ckpt")   // a new bucket, as a gocloud.dev/blob bucket
//	store, err := persistence.NewBucketCheckpoints(bucket, "jobs/a/", srv.URL("ckpt"))
//
// The weed binary is $EDDY_WEED, else $EDDY_CACHE_DIR/bin/weed (default
// $HOME/.cache/eddy/bin/weed), where `bash .ci/install-seaweedfs.sh` builds it. When it is
// missing the test is skipped with that advice, unless CI=true or EDDY_REQUIRE_WEED=1,
// when it fails.
package s3test
