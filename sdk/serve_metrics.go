package sdk

import "github.com/storage-host/storage-host/abi"

// decodePutMetric decodes and checks a request to put a metric into r:
// the one decoding of the op, for a single request and a batch's item.
func (d *dispatcher) decodePutMetric(req []byte, r *abi.PutMetric) error {
	*r = abi.PutMetric{}
	r.Decode(d.begin(req))
	if err := d.endWrite(&r.TTL, nil); err != nil {
		return err
	}
	return r.Metric.Check()
}

func (d *dispatcher) putMetric(req []byte, e *abi.Encoder) error {
	r := &d.req.putMetric
	if err := d.decodePutMetric(req, r); err != nil {
		return err
	}
	v, err := d.p.Metrics.PutMetric(r)
	ok, err := d.written(err)
	if ok {
		v.Encode(e)
	}
	return err
}

// metricKey decodes and checks a request that is a MetricKey.
func (d *dispatcher) metricKey(req []byte) (*abi.MetricKey, error) {
	k := &d.req.metricKey
	*k = abi.MetricKey{}
	k.Decode(d.begin(req))
	if err := d.end(); err != nil {
		return nil, err
	}
	return k, k.Check()
}

func (d *dispatcher) getMetric(req []byte, e *abi.Encoder) error {
	k, err := d.metricKey(req)
	if err != nil {
		return err
	}
	v, err := d.p.Metrics.GetMetric(k)
	ok, err := read(err)
	if ok {
		v.Encode(e)
	}
	return err
}

func (d *dispatcher) deleteMetric(req []byte, _ *abi.Encoder) error {
	k, err := d.metricKey(req)
	if err != nil {
		return err
	}
	return d.write(d.p.Metrics.DeleteMetric(k))
}

func (d *dispatcher) queryMetrics(req []byte, e *abi.Encoder) error {
	q := &d.req.metricQuery
	*q = abi.MetricQuery{}
	q.Decode(d.begin(req))
	if err := d.end(); err != nil {
		return err
	}
	p, err := d.mq.QueryMetrics(q)
	return encodePage(e, &p, err)
}
