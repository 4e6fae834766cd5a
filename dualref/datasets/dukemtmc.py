"""DukeMTMC-reID (Zheng et al., ICCV 2017): 1,404 identities, 8 cameras."""
import re

from .base import FolderDataset


class DukeMTMC(FolderDataset):
    """``<root>/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}``.

    Official sizes: train 16,522 images / 702 ids; query 2,228; gallery 17,661.
    """

    name = "dukemtmc"
    release = "DukeMTMC-reID"
    # PPPP_cC_fFFFFFFF.jpg: id, camera, frame.
    pattern = re.compile(r"(?P<pid>-?\d+)_c(?P<cam>\d)_f\d+\.jpg")
    file_format = "PPPP_cC_fFFFFFFF.jpg"
    num_cams = 8
