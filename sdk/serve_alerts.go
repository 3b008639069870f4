package sdk

import "github.com/storage-host/storage-host/abi"

// decodePutAlert decodes and checks a request to put an alert into r.
func (d *dispatcher) decodePutAlert(req []byte, r *abi.PutAlert) error {
	*r = abi.PutAlert{}
	r.Decode(d.begin(req))
	if err := d.endWrite(&r.TTL, nil); err != nil {
		return err
	}
	return r.Alert.Check()
}

func (d *dispatcher) putAlert(req []byte, e *abi.Encoder) error {
	r := &d.req.putAlert
	if err := d.decodePutAlert(req, r); err != nil {
		return err
	}
	v, err := d.p.Alerts.PutAlert(r)
	ok, err := d.written(err)
	if ok {
		v.Encode(e)
	}
	return err
}

// alertID decodes and checks a request that is an alert ID.
func (d *dispatcher) alertID(req []byte) (string, error) {
	id, err := d.decodeID(req)
	if err != nil {
		return "", err
	}
	return id, abi.CheckID("alert id", id)
}

func (d *dispatcher) getAlert(req []byte, e *abi.Encoder) error {
	id, err := d.alertID(req)
	if err != nil {
		return err
	}
	v, err := d.p.Alerts.GetAlert(id)
	ok, err := read(err)
	if ok {
		v.Encode(e)
	}
	return err
}

func (d *dispatcher) deleteAlert(req []byte, _ *abi.Encoder) error {
	id, err := d.alertID(req)
	if err != nil {
		return err
	}
	return d.write(d.p.Alerts.DeleteAlert(id))
}

// decodeSetAlertStatus decodes and checks a request to change an
// alert's status into r.
func (d *dispatcher) decodeSetAlertStatus(req []byte, r *abi.SetAlertStatus) error {
	*r = abi.SetAlertStatus{}
	r.Decode(d.begin(req))
	if err := d.end(); err != nil {
		return err
	}
	if err := abi.CheckID("alert id", r.ID); err != nil {
		return err
	}
	if !r.Status.Valid() {
		return abi.Errorf(abi.StatusInvalid, "unknown alert status %d", r.Status)
	}
	return nil
}

func (d *dispatcher) setAlertStatus(req []byte, e *abi.Encoder) error {
	r := &d.req.setStatus
	if err := d.decodeSetAlertStatus(req, r); err != nil {
		return err
	}
	v, err := d.p.Alerts.SetAlertStatus(r)
	ok, err := d.written(err)
	if ok {
		v.Encode(e)
	}
	return err
}

func (d *dispatcher) queryAlerts(req []byte, e *abi.Encoder) error {
	q := &d.req.alertQuery
	*q = abi.AlertQuery{}
	q.Decode(d.begin(req))
	if err := d.end(); err != nil {
		return err
	}
	p, err := d.aq.QueryAlerts(q)
	return encodePage(e, &p, err)
}
