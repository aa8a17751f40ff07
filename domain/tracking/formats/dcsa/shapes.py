"""The three shapes a DCSA Track & Trace event comes in, each read into one :class:`Draft`.

- 2.2: flat (``eventType``, ``eventClassifierCode``, ``transportEventTypeCode``..., ``eventCreatedDateTime``).
- 3.0.0-Beta-1: a ``metadata`` envelope (id, created, type, ``retractedEventID``) and a ``payload``.
- 3.0.0: ``eventClassification``, ``eventUpdatedDateTime``, ``isRetracted``, ``*Details`` blocks, and the
  IOT and REEFER event types.

A draft holds what the event says, already typed; whether it becomes a canonical event is decided by the
caller from the issues the reader collected.

References: ``BKG`` (and ``carrierBookingReference``) is the carrier's booking; ``TRD``, the carrier's
transport document, is the master B/L (a forwarder's house B/L is never a DCSA document); the equipment
reference (and ``EQ``) is the container; the shipper's and forwarder's own references (``FF``, ``SI``,
``PO``, ``CR``, ``AAO``, ``CSI``, ``BPR``) are customer references. Every other document and reference type
(``CBR``, ``SHI``, ``ECR``, customs ids...) is kept in ``detail`` only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from domain.shipments.models import ReferenceKind
from domain.tracking.canonical import Classifier, Place
from domain.tracking.formats.dcsa.reader import EventReader, Instant, join
from domain.tracking.mapping import CODELISTS_DIR, read_codelist

V22 = "2.2"
V300_BETA1 = "3.0.0-Beta-1"
V300 = "3.0.0"

SYSTEMS = {
    "TRANSPORT": "dcsa.transport",
    "EQUIPMENT": "dcsa.equipment",
    "SHIPMENT": "dcsa.shipment",
    "IOT": "dcsa.iot",
    "REEFER": "dcsa.reefer",
}
TYPE_CODE_KEYS = {
    "TRANSPORT": "transportEventTypeCode",
    "EQUIPMENT": "equipmentEventTypeCode",
    "SHIPMENT": "shipmentEventTypeCode",
    "IOT": "iotEventTypeCode",
    "REEFER": "reeferEventTypeCode",
}
CLASSIC_TYPES = ("TRANSPORT", "EQUIPMENT", "SHIPMENT")  # 2.2 and 3.0.0-Beta-1 know no IOT or REEFER
DELAY_SYSTEM = "smdg.delay"
CODE_LISTS = {
    system: frozenset(read_codelist(CODELISTS_DIR / f"{system}.txt")) for system in SYSTEMS.values()
}

DOCUMENT_REFERENCE_KINDS = {"BKG": ReferenceKind.BOOKING, "TRD": ReferenceKind.MASTER_BL}
SHIPMENT_REFERENCE_KINDS = {
    "EQ": ReferenceKind.CONTAINER,
    "FF": ReferenceKind.CUSTOMER_REFERENCE,
    "SI": ReferenceKind.CUSTOMER_REFERENCE,
    "PO": ReferenceKind.CUSTOMER_REFERENCE,
    "CR": ReferenceKind.CUSTOMER_REFERENCE,
    "AAO": ReferenceKind.CUSTOMER_REFERENCE,
    "CSI": ReferenceKind.CUSTOMER_REFERENCE,
    "BPR": ReferenceKind.CUSTOMER_REFERENCE,
}
EMPTY_INDICATORS = ("EMPTY", "LADEN")


@dataclass
class Draft:
    version: str
    event_id: str | None = None
    event_type: str | None = None
    classifier: Classifier | None = None
    system: str | None = None
    type_code: str | None = None
    occurred: Instant | None = None
    occurred_where: str = "eventDateTime"
    updated: Instant | None = None
    updated_where: str = "eventCreatedDateTime"
    is_retracted: bool = False
    # the fields a retraction still needs (anything else in it is irrelevant, DCSA 3.0 says)
    retraction_wheres: tuple[str, ...] = ()
    delay_reasons: list[str] = field(default_factory=list)
    references: list[tuple[str, str]] = field(default_factory=list)
    place: Place | None = None
    carrier_code: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def put(self, key: str, value: Any) -> None:
        if value is not None and value != [] and value != {}:
            self.detail[key] = value

    def document_reference(self, type_code: str, reference: str) -> None:
        self.detail.setdefault("document_references", []).append({"type": type_code, "reference": reference})
        kind = DOCUMENT_REFERENCE_KINDS.get(type_code)
        if kind is not None:
            self.references.append((kind.value, reference))

    def shipment_reference(self, type_code: str, reference: str) -> None:
        self.detail.setdefault("shipment_references", []).append({"type": type_code, "reference": reference})
        kind = SHIPMENT_REFERENCE_KINDS.get(type_code)
        if kind is not None:
            self.references.append((kind.value, reference))

    def container(self, reference: str) -> None:
        self.detail["equipment_reference"] = reference
        self.references.append((ReferenceKind.CONTAINER.value, reference))


def detect_shape(event: dict[str, Any]) -> str | None:
    if "metadata" in event or "payload" in event:
        return V300_BETA1
    if "eventClassification" in event or "isRetracted" in event or "eventUpdatedDateTime" in event:
        return V300
    if "eventType" in event or "eventCreatedDateTime" in event or "eventClassifierCode" in event:
        return V22
    return None


# --- shared pieces -------------------------------------------------------------------------------------


def _event_type(
    reader: EventReader, obj: dict[str, Any], where: str, key: str, allowed: tuple[str, ...]
) -> str | None:
    value = reader.text(obj, where, key, required=True)
    if value is not None and value not in allowed:
        reader.issue(join(where, key), "unknown_event_type", f"{value!r} is not one of {', '.join(allowed)}")
        return None
    return value


def _classifier(reader: EventReader, obj: dict[str, Any], where: str, key: str) -> Classifier | None:
    value = reader.text(obj, where, key, required=True)
    if value is None:
        return None
    if value in set(Classifier):
        return Classifier(value)
    if value == "REQ":
        reader.issue(
            join(where, key),
            "unsupported_classifier",
            "REQ (requested) is a DCSA classifier, but a timeline records only PLN, EST and ACT",
        )
    else:
        reader.issue(join(where, key), "unknown_classifier", f"{value!r} is not PLN, EST or ACT")
    return None


def _type_code(reader: EventReader, draft: Draft, obj: dict[str, Any], where: str) -> None:
    if draft.event_type is None:
        return
    key = TYPE_CODE_KEYS[draft.event_type]
    system = SYSTEMS[draft.event_type]
    value = reader.text(obj, where, key, required=True)
    if value is not None and value not in CODE_LISTS[system]:
        reader.issue(
            join(where, key),
            "unknown_type_code",
            f"{value!r} is not in the DCSA {draft.event_type.lower()} event type code list",
        )
        return
    draft.system, draft.type_code = system, value


def _enumerated(
    reader: EventReader, obj: dict[str, Any], where: str, key: str, allowed: tuple[str, ...], required: bool
) -> str | None:
    value = reader.text(obj, where, key, required=required)
    if value is not None and value not in allowed:
        reader.issue(join(where, key), "invalid_value", f"{value!r} is not one of {', '.join(allowed)}")
        return None
    return value


def _first_text(reader: EventReader, obj: dict[str, Any], where: str, *keys: str) -> str | None:
    for key in keys:
        value = reader.text(obj, where, key)
        if value is not None:
            return value
    return None


def _location(reader: EventReader, location: dict[str, Any], where: str) -> tuple[Place, dict[str, Any]]:
    """A DCSA location (any version's spelling) as a place, with what does not fit a place as extras."""
    facility_code = reader.text(location, where, "facilityCode")  # 2.2 and Beta-1: on the location
    provider = reader.text(location, where, "facilityCodeListProvider")
    extras: dict[str, Any] = {}
    facility = reader.object(location, where, "facility")  # 3.0: in a facility object
    if facility is not None:
        facility_where = join(where, "facility")
        facility_code = facility_code or reader.text(facility, facility_where, "facilityCode")
        provider = provider or reader.text(facility, facility_where, "facilityCodeListProvider")
        extras["facility_name"] = reader.text(facility, facility_where, "facilityName")
    extras["facility_code_list_provider"] = provider
    extras["facility_type_code"] = reader.text(location, where, "facilityTypeCode")
    coordinate = reader.object(location, where, "geoCoordinate")  # 3.0; earlier versions: on the location
    coordinate_where = join(where, "geoCoordinate") if coordinate is not None else where
    extras["latitude"] = reader.text(coordinate or location, coordinate_where, "latitude")
    extras["longitude"] = reader.text(coordinate or location, coordinate_where, "longitude")

    city = state = postal_code = country = None
    address = reader.object(location, where, "address")
    if address is not None:
        address_where = join(where, "address")
        fields = {
            key: reader.text(address, address_where, key)
            for key in ("name", "street", "streetNumber", "floor", "postCode", "POBox", "city", "stateRegion")
        }
        city, state, postal_code = fields["city"], fields["stateRegion"], fields["postCode"]
        country = reader.text(address, address_where, "countryCode")
        country_name = reader.text(address, address_where, "country")  # 2.2 writes the country's name
        if country is None and country_name is not None and len(country_name) == 2 and country_name.isupper():
            country = country_name
        fields |= {"country": country_name, "countryCode": country}
        address_lines = reader.texts(address, address_where, "addressLines")
        extras["address"] = {key: value for key, value in fields.items() if value is not None} | (
            {"addressLines": address_lines} if address_lines else {}
        )
    place = Place(
        locode=reader.locode(location, where),
        name=reader.text(location, where, "locationName"),
        city=city,
        state=state,
        country=country,
        postal_code=postal_code,
        facility_code=facility_code,
    )
    return place, {key: value for key, value in extras.items() if value is not None}


def _place_or_none(place: Place) -> Place | None:
    return None if place == Place() else place


def _seals(reader: EventReader, draft: Draft, obj: dict[str, Any], where: str) -> None:
    seals = []
    for seal_where, seal in reader.objects(obj, where, "seals"):
        entry = {
            "number": _first_text(reader, seal, seal_where, "sealNumber", "number"),
            "source": _first_text(reader, seal, seal_where, "sealSource", "sealSourceCode", "source"),
            "type": _first_text(reader, seal, seal_where, "sealType", "type"),
            "placement": reader.text(seal, seal_where, "placement"),
        }
        seals.append({key: value for key, value in entry.items() if value is not None})
    draft.put("seals", seals)


def _reference_pairs(
    reader: EventReader, obj: dict[str, Any], where: str, key: str, type_key: str, value_key: str
) -> list[tuple[str, str]]:
    pairs = []
    for item_where, item in reader.objects(obj, where, key):
        type_code = reader.text(item, item_where, type_key, required=True)
        value = reader.text(item, item_where, value_key, required=True)
        if type_code is not None and value is not None:
            pairs.append((type_code, value))
    return pairs


def _vessel(reader: EventReader, draft: Draft, vessel: dict[str, Any], where: str) -> None:
    draft.put("vessel_imo", reader.text(vessel, where, "vesselIMONumber"))
    draft.put("vessel_name", _first_text(reader, vessel, where, "vesselName", "name"))
    draft.put("vessel_flag", _first_text(reader, vessel, where, "vesselFlag", "flag"))
    draft.put(
        "vessel_call_sign",
        _first_text(reader, vessel, where, "vesselCallSignNumber", "vesselCallSign", "callSign"),
    )
    operator = _first_text(reader, vessel, where, "vesselOperatorCarrierCode", "operatorCarrierCode")
    provider = _first_text(
        reader, vessel, where, "vesselOperatorCarrierCodeListProvider", "operatorCarrierCodeListProvider"
    )
    draft.put("vessel_operator_carrier_code", operator)
    draft.put("vessel_operator_code_list_provider", provider)
    if draft.carrier_code is None and operator is not None:
        draft.carrier_code = operator
        draft.put("carrier_code_list_provider", provider)


def _transport_call(reader: EventReader, draft: Draft, call: dict[str, Any], where: str) -> Place | None:
    """A 2.2 or 3.0.0-Beta-1 transport call into ``detail``; returns where it is."""
    if draft.version == V22:
        draft.put("transport_call_reference", reader.text(call, where, "transportCallID", required=True))
        draft.put("mode_of_transport", reader.text(call, where, "modeOfTransport", required=True))
        draft.put(
            "export_voyage_number",
            _first_text(reader, call, where, "exportVoyageNumber", "carrierVoyageNumber"),
        )
        draft.put("import_voyage_number", reader.text(call, where, "importVoyageNumber"))
    else:
        draft.put("transport_call_reference", reader.text(call, where, "transportCallReference"))
        draft.put("mode_of_transport", reader.text(call, where, "modeOfTransport"))
        draft.put("export_voyage_number", reader.text(call, where, "carrierExportVoyageNumber"))
        draft.put("import_voyage_number", reader.text(call, where, "carrierImportVoyageNumber"))
        draft.put(
            "universal_export_voyage_reference", reader.text(call, where, "universalExportVoyageReference")
        )
        draft.put(
            "universal_import_voyage_reference", reader.text(call, where, "universalImportVoyageReference")
        )
        draft.put("universal_service_reference", reader.text(call, where, "universalServiceReference"))
        draft.put("port_visit_reference", reader.text(call, where, "portVisitReference"))
    draft.put("transport_call_sequence", reader.integer(call, where, "transportCallSequenceNumber"))
    draft.put("carrier_service_code", reader.text(call, where, "carrierServiceCode"))
    draft.put("facility_type_code", reader.text(call, where, "facilityTypeCode"))
    vessel = reader.object(call, where, "vessel")
    if vessel is not None:
        _vessel(reader, draft, vessel, join(where, "vessel"))

    # 2.2 puts the UN/LOCODE and facility on the call itself, both versions may add a `location`
    locode = reader.locode(call, where)
    facility_code = reader.text(call, where, "facilityCode")
    other_facility = reader.text(call, where, "otherFacility")
    draft.put("other_facility", other_facility)
    location = reader.object(call, where, "location")
    place, extras = _location(reader, location, join(where, "location")) if location else (Place(), {})
    extras.pop("facility_type_code", None)  # the call's own facilityTypeCode is the one that counts
    for key, value in extras.items():
        draft.detail.setdefault(key, value)
    if draft.detail.get("facility_code_list_provider") is None:
        draft.put("facility_code_list_provider", reader.text(call, where, "facilityCodeListProvider"))
    return _place_or_none(
        dataclasses.replace(
            place,
            locode=locode or place.locode,
            facility_code=facility_code or place.facility_code,
        )
    )


def _event_location(reader: EventReader, draft: Draft, location: dict[str, Any], where: str) -> Place | None:
    place, extras = _location(reader, location, where)
    draft.detail.update(extras)
    return _place_or_none(place)


def _equipment(reader: EventReader, draft: Draft, obj: dict[str, Any], where: str, *, required: bool) -> None:
    equipment = reader.text(obj, where, "equipmentReference")
    if equipment is not None:
        draft.container(equipment)
    # 3.0.0-Beta-1's reference implementation serialises the field as `isoequipmentCode`
    draft.put("equipment_iso_code", _first_text(reader, obj, where, "ISOEquipmentCode", "isoequipmentCode"))
    draft.put(
        "empty_indicator", _enumerated(reader, obj, where, "emptyIndicatorCode", EMPTY_INDICATORS, required)
    )
    draft.put("movement_type", reader.text(obj, where, "movementType"))
    draft.put("transshipment_move", reader.boolean(obj, where, "isTransshipmentMove"))
    _seals(reader, draft, obj, where)


def _shipment_document(
    reader: EventReader, draft: Draft, obj: dict[str, Any], where: str, id_key: str, *, required: bool
) -> None:
    type_code = reader.text(obj, where, "documentTypeCode", required=required)
    reference = reader.text(obj, where, id_key, required=required)
    draft.put("document_type_code", type_code)
    draft.put("document_reference", reference)
    if type_code is not None and reference is not None:
        kind = DOCUMENT_REFERENCE_KINDS.get(type_code)
        if kind is not None:
            draft.references.append((kind.value, reference))
    draft.put("reason", reader.text(obj, where, "reason"))


# --- 2.2 -----------------------------------------------------------------------------------------------


def read_v22(reader: EventReader, event: dict[str, Any]) -> Draft:
    draft = Draft(version=V22)
    draft.event_id = reader.text(event, "", "eventID")  # optional in 2.2
    draft.updated = reader.instant(event, "", "eventCreatedDateTime", required=True)
    draft.event_type = _event_type(reader, event, "", "eventType", CLASSIC_TYPES)
    draft.classifier = _classifier(reader, event, "", "eventClassifierCode")
    draft.occurred = reader.instant(event, "", "eventDateTime", required=True)
    _type_code(reader, draft, event, "")
    for type_code, value in _reference_pairs(
        reader, event, "", "documentReferences", "documentReferenceType", "documentReferenceValue"
    ):
        draft.document_reference(type_code, value)
    for type_code, value in _reference_pairs(
        reader, event, "", "references", "referenceType", "referenceValue"
    ):
        draft.shipment_reference(type_code, value)

    if draft.event_type == "TRANSPORT":
        delay = reader.text(event, "", "delayReasonCode")
        draft.delay_reasons = [delay] if delay else []
        draft.put(
            "change_remark", _first_text(reader, event, "", "changeRemark", "vesselScheduleChangeRemark")
        )
        call = reader.object(event, "", "transportCall", required=True)
        if call is not None:
            draft.place = _transport_call(reader, draft, call, "transportCall")
    elif draft.event_type == "SHIPMENT":
        _shipment_document(reader, draft, event, "", "documentID", required=True)
    elif draft.event_type == "EQUIPMENT":
        _equipment(reader, draft, event, "", required=True)
        call = reader.object(event, "", "transportCall")
        call_place = _transport_call(reader, draft, call, "transportCall") if call is not None else None
        location = reader.object(event, "", "eventLocation")
        location_place = _event_location(reader, draft, location, "eventLocation") if location else None
        draft.place = location_place or call_place
    return draft


# --- 3.0.0-Beta-1 --------------------------------------------------------------------------------------


def read_v300_beta1(reader: EventReader, event: dict[str, Any]) -> Draft:
    draft = Draft(
        version=V300_BETA1,
        occurred_where="payload.eventDateTime",
        updated_where="metadata.eventCreatedDateTime",
        retraction_wheres=("metadata", "metadata.retractedEventID", "metadata.eventCreatedDateTime"),
    )
    metadata = reader.object(event, "", "metadata", required=True) or {}
    own_id = reader.text(metadata, "metadata", "eventID", required=True)
    if "retractedEventID" in metadata:
        # a Beta-1 retraction is an event of its own that names the event it withdraws
        draft.is_retracted = True
        draft.put("retraction_event_id", own_id)
        retracted = metadata["retractedEventID"]
        if retracted is None or (isinstance(retracted, str) and not retracted.strip()):
            reader.issue(
                "metadata.retractedEventID",
                "retraction_without_id",
                "a retraction must name the eventID it withdraws",
            )
        else:
            draft.event_id = reader.text(metadata, "metadata", "retractedEventID")
    else:
        draft.event_id = own_id
    draft.updated = reader.instant(metadata, "metadata", "eventCreatedDateTime", required=True)
    draft.event_type = _event_type(reader, metadata, "metadata", "eventType", CLASSIC_TYPES)

    payload = reader.object(event, "", "payload", required=not draft.is_retracted) or {}
    draft.classifier = _classifier(reader, payload, "payload", "eventClassifierCode")
    draft.occurred = reader.instant(payload, "payload", "eventDateTime", required=True)
    _type_code(reader, draft, payload, "payload")
    for type_code, value in _reference_pairs(
        reader, payload, "payload", "relatedDocumentReferences", "type", "value"
    ):
        draft.document_reference(type_code, value)
    for type_code, value in _reference_pairs(reader, payload, "payload", "references", "type", "value"):
        draft.shipment_reference(type_code, value)

    if draft.event_type == "TRANSPORT":
        delay = reader.text(payload, "payload", "delayReasonCode")
        draft.delay_reasons = [delay] if delay else []
        draft.put("change_remark", reader.text(payload, "payload", "changeRemark"))
        call = reader.object(payload, "payload", "transportCall", required=True)
        if call is not None:
            draft.place = _transport_call(reader, draft, call, "payload.transportCall")
    elif draft.event_type == "SHIPMENT":
        _shipment_document(reader, draft, payload, "payload", "documentReference", required=False)
    elif draft.event_type == "EQUIPMENT":
        _equipment(reader, draft, payload, "payload", required=False)
        call = reader.object(payload, "payload", "transportCall")
        call_place = (
            _transport_call(reader, draft, call, "payload.transportCall") if call is not None else None
        )
        location = reader.object(payload, "payload", "eventLocation")
        location_place = (
            _event_location(reader, draft, location, "payload.eventLocation") if location else None
        )
        draft.place = location_place or call_place
        payload_facility_type = reader.text(payload, "payload", "facilityTypeCode")
        if payload_facility_type is not None:
            draft.detail["facility_type_code"] = payload_facility_type
    return draft


# --- 3.0.0 ---------------------------------------------------------------------------------------------


def _v300_transport(reader: EventReader, draft: Draft, details: dict[str, Any], where: str) -> None:
    draft.delay_reasons = reader.texts(details, where, "delayReasonCodes")
    draft.put("change_remark", reader.text(details, where, "changeRemark"))
    call = reader.object(details, where, "transportCall")
    if call is None:
        return
    call_where = join(where, "transportCall")
    draft.put("transport_call_reference", reader.text(call, call_where, "transportCallReference"))
    draft.put("transport_call_sequence", reader.integer(call, call_where, "transportCallSequenceNumber"))
    draft.put("mode_of_transport", reader.text(call, call_where, "modeOfTransport"))
    draft.put("port_visit_reference", reader.text(call, call_where, "portVisitReference"))
    service = reader.object(call, call_where, "serviceCodeOrReference")
    if service is not None:
        service_where = join(call_where, "serviceCodeOrReference")
        draft.put("carrier_service_code", reader.text(service, service_where, "carrierServiceCode"))
        draft.put(
            "universal_service_reference", reader.text(service, service_where, "universalServiceReference")
        )
    for direction in ("export", "import"):
        voyage_key = f"{direction}VoyageNumberOrReference"
        voyage = reader.object(call, call_where, voyage_key)
        if voyage is not None:
            voyage_where = join(call_where, voyage_key)
            draft.put(f"{direction}_voyage_number", reader.text(voyage, voyage_where, "carrierVoyageNumber"))
            draft.put(
                f"universal_{direction}_voyage_reference",
                reader.text(voyage, voyage_where, "universalVoyageReference"),
            )
    vessel = reader.object(call, call_where, "vesselTransport")
    if vessel is not None:
        _vessel(reader, draft, vessel, join(call_where, "vesselTransport"))
    for key, name in (("railTransport", "rail_transport"), ("truckTransport", "truck_transport")):
        vehicle = reader.object(call, call_where, key)
        if vehicle is not None:
            draft.put(name, vehicle)


def read_v300(reader: EventReader, event: dict[str, Any]) -> Draft:
    draft = Draft(
        version=V300,
        updated_where="eventUpdatedDateTime",
        retraction_wheres=("eventID", "isRetracted", "eventUpdatedDateTime"),
    )
    draft.is_retracted = reader.boolean(event, "", "isRetracted") is True
    draft.event_id = reader.text(event, "", "eventID", required=not draft.is_retracted)
    if draft.is_retracted and draft.event_id is None:
        reader.issue(
            "eventID", "retraction_without_id", "a retraction (isRetracted: true) must name its eventID"
        )
    draft.updated = reader.instant(event, "", "eventUpdatedDateTime", required=not draft.is_retracted)
    draft.occurred = reader.instant(event, "", "eventDateTime", required=True)

    classification = reader.object(event, "", "eventClassification", required=True)
    if classification is not None:
        where = "eventClassification"
        draft.event_type = _event_type(reader, classification, where, "eventTypeCode", tuple(SYSTEMS))
        draft.classifier = _classifier(reader, classification, where, "eventClassifierCode")
        _type_code(reader, draft, classification, where)

    routing = reader.object(event, "", "eventRouting")
    originating = reader.object(routing, "eventRouting", "originatingParty") if routing is not None else None
    if originating is not None:
        where = "eventRouting.originatingParty"
        party = {
            key: reader.text(originating, where, key)
            for key in ("partyCode", "codeListProvider", "codeListName", "partyFunction")
        }
        draft.put("originating_party", {key: value for key, value in party.items() if value is not None})
        draft.carrier_code = party["partyCode"]
        draft.put("carrier_code_list_provider", party["codeListProvider"])

    location = reader.object(event, "", "eventLocation")
    if location is not None:
        draft.place = _event_location(reader, draft, location, "eventLocation")

    shipment = reader.object(event, "", "shipmentDetails")
    if shipment is not None:
        where = "shipmentDetails"
        primary = reader.object(shipment, where, "documentReference")
        if primary is not None:
            primary_where = join(where, "documentReference")
            type_code = reader.text(primary, primary_where, "typeCode", required=True)
            reference = reader.text(primary, primary_where, "reference", required=True)
            if type_code is not None and reference is not None:
                draft.put("document_type_code", type_code)
                draft.put("document_reference", reference)
                draft.document_reference(type_code, reference)
        for type_code, value in _reference_pairs(
            reader, shipment, where, "additionalDocumentReferences", "typeCode", "reference"
        ):
            draft.document_reference(type_code, value)
        for type_code, value in _reference_pairs(
            reader, shipment, where, "shipmentReferences", "typeCode", "reference"
        ):
            draft.shipment_reference(type_code, value)
        draft.put("shipment_location_type", reader.text(shipment, where, "shipmentLocationType"))
        draft.put("reason", reader.text(shipment, where, "reason"))

    transport = reader.object(event, "", "transportDetails")
    if transport is not None:
        _v300_transport(reader, draft, transport, "transportDetails")

    equipment = reader.object(event, "", "equipmentDetails")
    if equipment is not None:
        _equipment(reader, draft, equipment, "equipmentDetails", required=False)

    iot = reader.object(event, "", "iotDetails")
    if iot is not None:
        draft.put("iot_event_code", reader.text(iot, "iotDetails", "iotEventCode"))
    reefer = reader.object(event, "", "reeferDetails")
    if reefer is not None:
        draft.put("reefer", reefer)  # measurements as sent; judging them is for rules, not the adapter
    return draft
