// Package engine holds flagproxy's flag model and decides flags.
//
// It is pure and deterministic: it performs no I/O, keeps no global state,
// reads no clock and draws no random numbers of its own. A [Snapshot] is
// built once from the rows that a loader read (see package djangodb), is
// never modified afterwards, and is published to request handlers through a
// [Store]. [Snapshot.Evaluate] turns one request's inputs into decisions for
// every flag, switch and sample the snapshot knows, following the rules of
// the Django library each flag came from (django-waffle, django-feature-flipper
// or the FeatureFlag model).
package engine
